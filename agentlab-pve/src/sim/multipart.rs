//! `multipart/form-data` bodies as pveproxy takes them for uploads: text parts become
//! parameters; the part with a `filename` is the file (its name becomes the `filename`
//! parameter, as PVE's upload handler does).

use axum::http::HeaderMap;
use sha2::{Digest, Sha256};

use super::images::UploadedFile;

/// The boundary of a `multipart/form-data` request.
pub fn boundary(headers: &HeaderMap) -> Option<String> {
    let ct = headers.get("content-type")?.to_str().ok()?;
    let rest = ct.strip_prefix("multipart/form-data")?;
    rest.split(';').find_map(|p| {
        p.trim()
            .strip_prefix("boundary=")
            .map(|b| b.trim_matches('"').to_owned())
    })
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    hay.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|i| i + from)
}

fn disposition_param(headers: &str, key: &str) -> Option<String> {
    let line = headers
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("content-disposition:"))?;
    line.split(';').find_map(|p| {
        p.trim()
            .strip_prefix(&format!("{key}="))
            .map(|v| v.trim_matches('"').to_owned())
    })
}

/// Parameters and the uploaded file of a multipart body.
pub type Parsed = (Vec<(String, String)>, Option<UploadedFile>);

/// Parses a multipart body into its parameters and file.
pub fn parse(body: &[u8], boundary: &str) -> Result<Parsed, String> {
    let delim = format!("--{boundary}");
    let mut params = Vec::new();
    let mut file = None;
    let mut pos = find(body, delim.as_bytes(), 0).ok_or("multipart: no boundary in body")?;
    loop {
        pos += delim.len();
        if body.get(pos..pos + 2) == Some(b"--") {
            break;
        }
        pos += 2; // CRLF after the boundary
        let head_end = find(body, b"\r\n\r\n", pos).ok_or("multipart: part without headers")?;
        let headers = String::from_utf8_lossy(&body[pos..head_end]).into_owned();
        let data_start = head_end + 4;
        let next = find(body, format!("\r\n{delim}").as_bytes(), data_start)
            .ok_or("multipart: unterminated part")?;
        let data = &body[data_start..next];
        let name = disposition_param(&headers, "name").ok_or("multipart: part without name")?;
        match disposition_param(&headers, "filename") {
            Some(filename) => {
                params.push(("filename".to_owned(), filename.clone()));
                file = Some(UploadedFile {
                    filename,
                    size: data.len() as u64,
                    sha256: hex::encode(Sha256::digest(data)),
                });
            }
            None => params.push((name, String::from_utf8_lossy(data).into_owned())),
        }
        pos = next + 2;
    }
    Ok((params, file))
}
