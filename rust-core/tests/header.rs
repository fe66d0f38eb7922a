//! The committed C header must be exactly what cbindgen makes of the current code.

use std::path::Path;

#[test]
fn header_is_up_to_date() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config =
        cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).expect("cbindgen.toml parses");
    let bindings = cbindgen::Builder::new()
        .with_crate(crate_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header");
    let mut generated = Vec::new();
    bindings.write(&mut generated);
    let committed =
        std::fs::read(crate_dir.join("include/openspace_webrtc.h")).expect("header is committed");
    assert!(
        generated == committed,
        "include/openspace_webrtc.h is stale: run rust-core/generate-header.sh and commit the result"
    );
}
