//! Compiles the rules in `queries/` (and the views in `queries/views/` they
//! share) into the binary, so `emrwatch detect` works from any folder;
//! `--rules DIR` replaces them.

use std::fmt::Write as _;
use std::path::Path;

/// Writes OUT_DIR/`out` as an expression: a `&[(file name, text)]` of `dir`'s `*.sql`.
fn embed(dir: &Path, out: &str) {
    println!("cargo::rerun-if-changed={}", dir.display());
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".sql"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    let mut code = String::from("{\n    const FILES: &[(&str, &str)] = &[\n");
    for n in &names {
        let path = std::fs::canonicalize(dir.join(n)).expect("a listed .sql file");
        writeln!(
            code,
            "        ({n:?}, include_str!({:?})),",
            path.display().to_string()
        )
        .expect("writing to a String");
    }
    code.push_str("    ];\n    FILES\n}\n");
    let dest = Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join(out);
    std::fs::write(dest, code).expect("OUT_DIR is writable");
}

fn main() {
    embed(Path::new("queries"), "builtin_rules.rs");
    embed(Path::new("queries/views"), "builtin_views.rs");
}
