//! Run the tinysplit compiler from a Cargo build script.
//!
//! ```no_run
//! // build.rs
//! let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").unwrap()).join("tinysplit");
//! let model_crate = tinysplit_build::compile("model/lenet5.onnx", &out, "stm32", &["--prefix", "lenet"])
//!     .unwrap_or_else(|e| panic!("{e}"));
//! println!("cargo:rustc-env=LENET_CRATE={}", model_crate.display());
//! ```
//!
//! The `tinysplit` executable is the `TINYSPLIT` environment variable, else `tinysplit` on the `PATH`.
//! Cargo reruns the build script when the model, the calibration data, the target profile (the
//! inputs tinysplit lists in its dependency file) or `TINYSPLIT` change.

use std::ffi::OsString;
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};

/// Why a compile did not give a crate.
#[derive(Debug)]
pub enum Error {
    /// The executable could not be started (not installed, not on the `PATH`, `TINYSPLIT` wrong).
    Spawn(PathBuf, io::Error),
    /// tinysplit ran and failed: its exit status and what it wrote to standard error.
    Failed(ExitStatus, String),
    /// The dependency file tinysplit wrote could not be read.
    Deps(PathBuf, io::Error),
    /// tinysplit succeeded but there is no crate at this path (were Rust outputs requested?).
    NoCrate(PathBuf),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Spawn(program, e) => write!(
                f,
                "cannot run {}: {e} (set TINYSPLIT or PATH)",
                program.display()
            ),
            Error::Failed(status, stderr) => {
                write!(f, "tinysplit failed ({status}): {}", stderr.trim_end())
            }
            Error::Deps(path, e) => write!(f, "cannot read {}: {e}", path.display()),
            Error::NoCrate(path) => write!(f, "tinysplit generated no crate at {}", path.display()),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Spawn(_, e) | Error::Deps(_, e) => Some(e),
            _ => None,
        }
    }
}

/// Compiles `model` for the device profile `target` into `out_dir`, passing `options` on (for
/// example `["--quantize", "int8", "--calibration", "cal.npz"]`), prints the `cargo:rerun-if-changed`
/// lines for its inputs, and returns the generated crate's folder, `out_dir/rust/<prefix>-model`.
///
/// # Errors
/// When tinysplit cannot be started, fails, or generates no crate; see [`Error`].
pub fn compile(
    model: impl AsRef<Path>,
    out_dir: impl AsRef<Path>,
    target: &str,
    options: &[&str],
) -> Result<PathBuf, Error> {
    println!("cargo:rerun-if-env-changed=TINYSPLIT");
    let program =
        std::env::var_os("TINYSPLIT").map_or_else(|| PathBuf::from("tinysplit"), PathBuf::from);
    let (inputs, warnings, crate_dir) =
        run(&program, model.as_ref(), out_dir.as_ref(), target, options)?;
    for line in warnings.lines().filter(|l| !l.trim().is_empty()) {
        println!("cargo:warning={line}");
    }
    for input in inputs {
        println!("cargo:rerun-if-changed={input}");
    }
    Ok(crate_dir)
}

/// Runs `program compile ...`; returns the inputs it depends on, its standard error, and the crate.
fn run(
    program: &Path,
    model: &Path,
    out_dir: &Path,
    target: &str,
    options: &[&str],
) -> Result<(Vec<String>, String, PathBuf), Error> {
    let mut deps = OsString::from(out_dir.as_os_str());
    deps.push(".d");
    let output = Command::new(program)
        .arg("compile")
        .arg(model)
        .arg("-o")
        .arg(out_dir)
        .args(["--target", target])
        .args(options)
        .arg("--emit-deps")
        .arg(&deps)
        .output()
        .map_err(|e| Error::Spawn(program.to_path_buf(), e))?;
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    if !output.status.success() {
        return Err(Error::Failed(output.status, stderr));
    }
    let text = fs::read_to_string(&deps).map_err(|e| Error::Deps(deps.clone().into(), e))?;
    let crate_dir = out_dir.join("rust").join(crate_name(prefix(options)));
    if !crate_dir.join("Cargo.toml").is_file() {
        return Err(Error::NoCrate(crate_dir));
    }
    Ok((prerequisites(&text), stderr, crate_dir))
}

/// The value of `--prefix` in `options`, else tinysplit's default.
fn prefix<'a>(options: &[&'a str]) -> &'a str {
    let mut value = "model";
    for (i, option) in options.iter().enumerate() {
        if let Some(v) = option.strip_prefix("--prefix=") {
            value = v;
        } else if *option == "--prefix" {
            value = options.get(i + 1).copied().unwrap_or(value);
        }
    }
    value
}

/// The generated crate's name: the prefix in lower case, other characters as `-`, then `-model`.
fn crate_name(prefix: &str) -> String {
    let lower = prefix.to_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    let name = if words.is_empty() {
        "model".to_string()
    } else {
        words.join("-")
    };
    format!("{name}-model")
}

/// The prerequisites of the first rule of a Makefile-format dependency file (`\ ` is a space).
fn prerequisites(text: &str) -> Vec<String> {
    let text = text.replace("\\\r\n", " ").replace("\\\n", " ");
    let rule = text.lines().next().unwrap_or("");
    let Some(colon) = rule
        .find(": ")
        .or_else(|| rule.strip_suffix(':').map(str::len))
    else {
        return Vec::new();
    };
    let mut paths = Vec::new();
    let mut current = String::new();
    let mut chars = rule[colon + 1..].chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' && chars.peek() == Some(&' ') {
            current.push(chars.next().unwrap_or(' '));
        } else if c.is_whitespace() {
            if !current.is_empty() {
                paths.push(std::mem::take(&mut current));
            }
        } else {
            current.push(c);
        }
    }
    if !current.is_empty() {
        paths.push(current);
    }
    paths
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_first_rule_of_a_dependency_file() {
        let text = "out/c/model.c out/report.json: \\\n  /m/lenet 5.onnx \\\n  /t/stm32.toml\n/m/lenet 5.onnx:\n";
        assert_eq!(
            prerequisites(&text.replace("lenet 5", "lenet\\ 5")),
            ["/m/lenet 5.onnx", "/t/stm32.toml"]
        );
        assert_eq!(prerequisites("a.o:\n"), Vec::<String>::new());
        assert_eq!(prerequisites(""), Vec::<String>::new());
    }

    #[test]
    fn names_the_crate_after_the_prefix() {
        assert_eq!(crate_name(prefix(&[])), "model-model");
        assert_eq!(
            crate_name(prefix(&["--quantize", "int8", "--prefix", "LeNet_5"])),
            "lenet-5-model"
        );
        assert_eq!(crate_name(prefix(&["--prefix=kws"])), "kws-model");
        assert_eq!(crate_name("__"), "model-model");
    }

    #[cfg(unix)]
    #[test]
    fn runs_the_compiler_and_returns_the_crate() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("tinysplit-build-test-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        // A stand-in compiler: writes the crate and a dependency file where the real one would.
        let fake = dir.join("tinysplit");
        let script = "#!/bin/sh\nout=$4; while [ $# -gt 1 ]; do shift; done\n\
            mkdir -p \"$out/rust/kws-model\" && touch \"$out/rust/kws-model/Cargo.toml\"\n\
            printf '%s: \\\\\\n  /m/kws.onnx \\\\\\n  /t/host.toml\\n' \"$out/report.json\" > \"$1\"\n\
            echo 'warning: the model does not fit' >&2\n";
        fs::write(&fake, script).unwrap();
        fs::set_permissions(&fake, fs::Permissions::from_mode(0o755)).unwrap();
        let out = dir.join("out");
        let (inputs, stderr, crate_dir) = run(
            &fake,
            Path::new("kws.onnx"),
            &out,
            "host",
            &["--prefix", "kws"],
        )
        .unwrap();
        assert_eq!(inputs, ["/m/kws.onnx", "/t/host.toml"]);
        assert!(stderr.contains("does not fit"));
        assert_eq!(crate_dir, out.join("rust/kws-model"));
        let missing = run(&fake, Path::new("kws.onnx"), &out, "host", &[]).unwrap_err();
        assert!(
            matches!(missing, Error::NoCrate(ref p) if p.ends_with("rust/model-model")),
            "{missing}"
        );
        let failed = run(
            Path::new("/bin/false"),
            Path::new("kws.onnx"),
            &out,
            "host",
            &[],
        )
        .unwrap_err();
        assert!(matches!(failed, Error::Failed(..)), "{failed}");
        let absent = run(&dir.join("nope"), Path::new("kws.onnx"), &out, "host", &[]).unwrap_err();
        assert!(matches!(absent, Error::Spawn(..)), "{absent}");
        fs::remove_dir_all(&dir).unwrap();
    }
}
