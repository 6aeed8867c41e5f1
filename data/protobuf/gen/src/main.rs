//! Compiles every `generated.proto` under a proto root into one FileDescriptorSet (no source info),
//! gzipped. Usage: kelp-protobuf-gen <proto-root> <out.fds.gz>
use std::io::Write;
use std::path::{Path, PathBuf};

use prost::Message;

fn protos(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir).expect("read dir").map(|e| e.expect("entry").path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            protos(root, &p, out);
        } else if p.extension().is_some_and(|e| e == "proto") {
            out.push(p.strip_prefix(root).expect("under root").to_path_buf());
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (root, out) = (PathBuf::from(&args[1]), PathBuf::from(&args[2]));
    let mut files = Vec::new();
    protos(&root, &root, &mut files);
    let mut compiler = protox::Compiler::new([&root]).expect("compiler");
    compiler.include_imports(true).include_source_info(false);
    compiler.open_files(&files).expect("compile");
    let mut set = compiler.file_descriptor_set();
    set.file.sort_by(|a, b| a.name.cmp(&b.name));
    let bytes = set.encode_to_vec();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&bytes).expect("gzip");
    std::fs::write(&out, gz.finish().expect("gzip")).expect("write");
    eprintln!("{} files, {} bytes descriptor -> {}", set.file.len(), bytes.len(), out.display());
}
