//! Templates from images: `POST …/storage/{storage}/upload` (multipart, content `import`),
//! `POST /nodes/{node}/qemu` (create, with `import-from` disks and a cloud-init drive) and
//! `POST …/qemu/{vmid}/template`, with PVE's checks and task types (`imgcopy`, `qmcreate`,
//! `qmtemplate`).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::json;

use super::qemu::{HResult, check_exclusive, check_node, no_conf};
use super::server::{ApiErr, Ctx, SimInner};
use super::state::{Power, Vm, Volume, random_mac};

/// A file received in a multipart upload.
#[derive(Debug, Clone)]
pub struct UploadedFile {
    /// The part's `filename`.
    pub filename: String,
    /// Size in bytes.
    pub size: u64,
    /// `sha256` of the content (hex).
    pub sha256: String,
}

/// Extensions PVE accepts for content `import` (`$IMPORT_EXT_RE_1`).
const IMPORT_EXTS: [&str; 5] = ["ova", "ovf", "qcow2", "raw", "vmdk"];

/// `POST /nodes/{node}/storage/{storage}/upload`.
pub fn upload(inner: &Arc<SimInner>, ctx: &Ctx) -> HResult {
    let node = ctx.req("node");
    check_node(inner, node)?;
    let sid = ctx.req("storage");
    let s = inner
        .config
        .storages
        .iter()
        .find(|s| s.id == sid)
        .ok_or_else(|| ApiErr::internal(format!("storage '{sid}' does not exist")))?;
    let content = ctx.req("content");
    if !s.content.iter().any(|c| c == content) {
        return Err(ApiErr::internal(format!(
            "storage '{sid}' does not support '{content}' content"
        )));
    }
    let file = ctx
        .upload
        .clone()
        .ok_or_else(|| ApiErr::internal("upload failed: no file in the request"))?;
    let filename = ctx.req("filename");
    let ext = filename
        .rsplit_once('.')
        .map(|(_, e)| e)
        .unwrap_or_default();
    if content == "import" && !IMPORT_EXTS.contains(&ext) {
        return Err(ApiErr::param(
            "filename",
            "invalid filename or wrong extension",
        ));
    }
    if let Some(want) = ctx.get("checksum")
        && ctx.get("checksum-algorithm") == Some("sha256")
        && !want.eq_ignore_ascii_case(&file.sha256)
    {
        return Err(ApiErr::internal(format!(
            "checksum mismatch: got '{}' != expected '{want}'",
            file.sha256
        )));
    }
    let volid = format!("{sid}:{content}/{filename}");
    let key = node_key(&volid, node, s.shared);
    {
        let mut st = inner.state();
        if st.volumes.contains_key(&key) {
            return Err(ApiErr::internal(format!(
                "refusing to override existing file '{volid}'"
            )));
        }
        st.volumes.insert(
            key,
            Volume {
                owner: 0,
                size: file.size,
                node: node.to_owned(),
            },
        );
    }
    let upid = inner.spawn_task(node, "imgcopy", "", ctx.task_fault.clone(), async {
        Ok(())
    });
    Ok((json!(upid), None))
}

/// Key of an uploaded file in the volume map: local storages hold one copy per node
/// (`<volid>@<node>`), shared ones a single copy. Uploaded files are never referenced by VM
/// configs (`import-from` copies them), so the suffix stays internal to the simulator.
pub fn node_key(volid: &str, node: &str, shared: bool) -> String {
    if shared {
        volid.to_owned()
    } else {
        format!("{volid}@{node}")
    }
}

fn is_disk_key(k: &str) -> bool {
    let base = k.trim_end_matches(|c: char| c.is_ascii_digit());
    base.len() < k.len() && matches!(base, "scsi" | "virtio" | "sata" | "ide")
}

/// `POST /nodes/{node}/qemu`: creates a stopped VM. `STORAGE:0,import-from=VOLID` copies an
/// existing volume into `vm-<vmid>-disk-N`; `STORAGE:cloudinit` adds the cloud-init drive.
pub fn create(inner: &Arc<SimInner>, ctx: &Ctx) -> HResult {
    let node = ctx.req("node");
    check_node(inner, node)?;
    let vmid = ctx.req("vmid");
    let id: u32 = vmid.parse().unwrap_or_default();
    let mut st = inner.state();
    if st.vms.contains_key(&id) {
        return Err(ApiErr::internal(format!(
            "unable to create VM {vmid} - VM {vmid} already exists on node '{}'",
            st.vms.get(&id).map(|v| v.node.clone()).unwrap_or_default()
        )));
    }
    let mut config: BTreeMap<String, String> = BTreeMap::new();
    let mut new_volumes = Vec::new();
    let mut disk_n = 0;
    for (k, v) in &ctx.params {
        if matches!(
            k.as_str(),
            "node" | "vmid" | "start" | "storage" | "force" | "unique"
        ) {
            continue;
        }
        if !is_disk_key(k) {
            config.insert(k.clone(), v.clone());
            continue;
        }
        let mut opts = v.split(',');
        let file = opts.next().unwrap_or_default().trim_start_matches("file=");
        let rest: Vec<&str> = opts.collect();
        let Some((store, what)) = file.split_once(':') else {
            config.insert(k.clone(), v.clone());
            continue;
        };
        let storage = inner
            .config
            .storages
            .iter()
            .find(|s| s.id == store)
            .ok_or_else(|| ApiErr::internal(format!("storage '{store}' does not exist")))?;
        let import = rest.iter().find_map(|o| o.strip_prefix("import-from="));
        let kept: Vec<&str> = rest
            .iter()
            .copied()
            .filter(|o| !o.starts_with("import-from="))
            .collect();
        let (volid, size, media) = if what == "cloudinit" {
            (
                format!("{store}:vm-{vmid}-cloudinit"),
                4u64 << 20,
                ",media=cdrom",
            )
        } else if let Some(src) = import {
            if what != "0" {
                return Err(ApiErr::param(
                    k,
                    "import-from requires the size 0 (STORAGE:0)",
                ));
            }
            let size = st
                .volumes
                .get(src)
                .or_else(|| st.volumes.get(&format!("{src}@{node}")))
                .map(|v| v.size)
                .ok_or_else(|| ApiErr::internal(format!("volume '{src}' does not exist")))?;
            let name = if storage.is_file_based() {
                format!("{store}:{vmid}/vm-{vmid}-disk-{disk_n}.qcow2")
            } else {
                format!("{store}:vm-{vmid}-disk-{disk_n}")
            };
            disk_n += 1;
            // The import converts the image; its virtual size is at least the file's.
            (name, size.max(1 << 30), "")
        } else {
            config.insert(k.clone(), v.clone());
            continue;
        };
        if !storage.content.iter().any(|c| c == "images") {
            return Err(ApiErr::internal(format!(
                "storage '{store}' does not support vm images"
            )));
        }
        let size_opt = if media.is_empty() {
            format!(",size={}G", size.div_ceil(1 << 30))
        } else {
            String::new()
        };
        let mut value = format!("{volid}{media}{size_opt}");
        for o in kept {
            value.push(',');
            value.push_str(o);
        }
        config.insert(k.clone(), value);
        new_volumes.push((volid, size));
    }
    if let Some(net) = config.get_mut("net0")
        && let Some(rest) = net.strip_prefix("virtio,")
    {
        *net = format!("virtio={},{rest}", random_mac());
    }
    for (volid, size) in new_volumes {
        st.volumes.insert(
            volid,
            Volume {
                owner: id,
                size,
                node: node.to_owned(),
            },
        );
    }
    config.insert("lock".into(), "create".into());
    st.vms.insert(
        id,
        Vm {
            node: node.to_owned(),
            config,
            power: Power::Stopped,
            agent_ready_at: None,
            files: BTreeMap::new(),
            clone_readers: 0,
        },
    );
    drop(st);
    let sim = Arc::clone(inner);
    let work = async move {
        if let Some(vm) = sim.state().vms.get_mut(&id) {
            vm.config.remove("lock");
        }
        Ok(())
    };
    let upid = inner.spawn_task(node, "qmcreate", vmid, ctx.task_fault.clone(), work);
    Ok((json!(upid), None))
}

/// `POST /nodes/{node}/qemu/{vmid}/template`: renames `vm-<id>-disk-N` to `base-<id>-disk-N`
/// and sets `template: 1`.
pub fn template(inner: &Arc<SimInner>, ctx: &Ctx) -> HResult {
    let (node, vmid) = (ctx.req("node"), ctx.req("vmid"));
    check_node(inner, node)?;
    let id: u32 = vmid.parse().unwrap_or_default();
    let mut st = inner.state();
    let vm = st
        .vms
        .get(&id)
        .filter(|vm| vm.node == node)
        .ok_or_else(|| no_conf(node, vmid))?;
    check_exclusive(vm, vmid)?;
    if vm.is_template() {
        return Err(ApiErr::internal(
            "you can't convert a template to a template",
        ));
    }
    if vm.power != Power::Stopped {
        return Err(ApiErr::internal(
            "you can't convert a running VM to a template",
        ));
    }
    let mut config = vm.config.clone();
    let from = format!("vm-{vmid}-disk-");
    let to = format!("base-{vmid}-disk-");
    for (k, v) in config.iter_mut().filter(|(k, _)| is_disk_key(k)) {
        if v.contains(&from) {
            let old = v.split(',').next().unwrap_or_default().to_owned();
            let new = old.replace(&from, &to);
            if let Some(vol) = st.volumes.remove(&old) {
                st.volumes.insert(new.clone(), vol);
            }
            *v = v.replacen(&old, &new, 1);
        }
        let _ = k;
    }
    config.insert("template".into(), "1".into());
    if let Some(vm) = st.vms.get_mut(&id) {
        vm.config = config;
    }
    drop(st);
    let upid = inner.spawn_task(node, "qmtemplate", vmid, ctx.task_fault.clone(), async {
        Ok(())
    });
    Ok((json!(upid), None))
}
