//! The committed C header must be exactly what cbindgen makes of the current code.
//!
//! With `OSW_WRITE_HEADER=1` the test writes the header instead (`generate-header.sh`).

use std::path::Path;

#[test]
fn header_is_up_to_date() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config =
        cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).expect("cbindgen.toml parses");
    // Parsing from the source files (not `cargo metadata`) works offline and inside the
    // loopback-only namespace the tests run in.
    let bindings = cbindgen::Builder::new()
        .with_src(crate_dir.join("src/lib.rs"))
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header");
    let mut generated = Vec::new();
    bindings.write(&mut generated);
    let path = crate_dir.join("include/openspace_webrtc.h");
    if std::env::var_os("OSW_WRITE_HEADER").is_some() {
        std::fs::write(&path, &generated).expect("write the header");
        return;
    }
    let committed = std::fs::read(&path).expect("header is committed");
    assert!(
        generated == committed,
        "include/openspace_webrtc.h is stale: run rust-core/generate-header.sh and commit the result"
    );
}
