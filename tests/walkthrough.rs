//! Runs `tests/walkthrough.sh` (the README's curl walk-through) against the built binary.

use std::process::Command;

#[test]
fn the_readme_curl_walkthrough_works_as_written() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/walkthrough.sh");
    let out = Command::new("bash")
        .arg(script)
        .arg(env!("CARGO_BIN_EXE_veneer"))
        .output()
        .expect("bash runs (the walk-through also needs curl)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("walkthrough: ok"), "{stdout}");
}
