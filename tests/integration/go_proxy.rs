//! An offline Go module proxy in a folder (`GOPROXY=file://...`), shared
//! by the tests and benches/incident.rs (included there by path).

use std::io::Write as _;
use std::path::Path;

/// A file-based Go module proxy with one version of each module.
pub fn go_proxy(
    dir: &Path,
    modules: &[(&str, &[(&str, &str)])],
) -> Result<(), Box<dyn std::error::Error>> {
    for (module, files) in modules {
        // A proxy spells paths as the module cache does (`!` + lower case).
        let v = dir
            .join(fixer::playbook::template::go_escape_path(module))
            .join("@v");
        std::fs::create_dir_all(&v)?;
        std::fs::write(v.join("list"), "v1.0.0\n")?;
        std::fs::write(
            v.join("v1.0.0.info"),
            "{\"Version\":\"v1.0.0\",\"Time\":\"2024-01-01T00:00:00Z\"}",
        )?;
        let gomod = format!("module {module}\n\ngo 1.19\n");
        std::fs::write(v.join("v1.0.0.mod"), &gomod)?;
        let mut zip = zip::ZipWriter::new(std::fs::File::create(v.join("v1.0.0.zip"))?);
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        zip.start_file(format!("{module}@v1.0.0/go.mod"), opts)?;
        zip.write_all(gomod.as_bytes())?;
        for (name, body) in *files {
            zip.start_file(format!("{module}@v1.0.0/{name}"), opts)?;
            zip.write_all(body.as_bytes())?;
        }
        zip.finish()?;
    }
    Ok(())
}
