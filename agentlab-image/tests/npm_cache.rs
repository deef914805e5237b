//! The npm cache: a second install of the same packages works with the registry unreachable.
#![cfg(test)] // integration-test crate; keeps clippy::tests_outside_test_module satisfied

mod support;

use agentlab_image::npm::{NpmOptions, install};

#[test]
fn rebuild_from_the_cache_with_the_registry_unreachable() {
    if agentlab_image::tools::which("npm").is_none() {
        support::skip_or_fail("npm is not installed (apt-get install npm)");
        return;
    }
    if !support::npm_registry_reachable() {
        support::skip_or_fail("the npm registry is unreachable (needed to fill the cache once)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let specs = vec!["is-number@7.0.0".to_owned()];
    let first = install(
        &specs,
        &dir.path().join("first"),
        &NpmOptions {
            cache: cache.clone(),
            ..NpmOptions::default()
        },
    )
    .unwrap();
    assert_eq!(first[0].name, "is-number");
    assert_eq!(first[0].version, "7.0.0");

    // The registry is down: every request goes through a proxy on loopback port 9, where
    // nothing listens (the registry URL stays the same, as npm keys its cache by it).
    let dead = "http://127.0.0.1:9/";
    let down: Vec<(String, String)> = ["npm_config_proxy", "npm_config_https_proxy"]
        .iter()
        .map(|k| ((*k).to_owned(), dead.to_owned()))
        .chain([("npm_config_fetch_retries".to_owned(), "0".to_owned())])
        .collect();
    let offline_opts = |offline| NpmOptions {
        cache: cache.clone(),
        offline,
        env: down.clone(),
        ..NpmOptions::default()
    };
    for (offline, prefix) in [(false, "second"), (true, "third")] {
        let prefix = dir.path().join(prefix);
        let again = install(&specs, &prefix, &offline_opts(offline)).unwrap();
        assert_eq!(again, first, "offline={offline}");
        let main = prefix.join("lib/node_modules/is-number/index.js");
        assert!(main.is_file(), "{} missing", main.display());
    }

    // Without the cache the same install fails: the registry really is unreachable.
    let err = install(
        &specs,
        &dir.path().join("fourth"),
        &NpmOptions {
            cache: dir.path().join("empty-cache"),
            env: down.clone(),
            ..NpmOptions::default()
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("npm"), "{err}");
}
