//! Generates the Rust types for proto/ with a vendored protoc, so a build
//! needs no system protobuf compiler.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // SAFETY-free: build scripts are single-threaded, so setting the variable
    // that prost-build reads is race-free.
    std::env::set_var("PROTOC", protoc);
    // The manifest directory of this run, not of the build that compiled
    // this script: clones sharing a target directory share the script.
    let manifest = std::env::var("CARGO_MANIFEST_DIR")?;
    let root = std::path::Path::new(&manifest).join("../../proto");
    let files = [
        root.join("meridian/v1/common.proto"),
        root.join("meridian/v1/node.proto"),
    ];
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
    }
    tonic_prost_build::configure().compile_protos(&files, &[root])?;
    Ok(())
}
