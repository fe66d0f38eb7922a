//! OpenSpace mode: the instance command that launches a real OpenSpace with the WebRtc module,
//! from an OpenSpace folder (`--openspace <dir>`).
//!
//! The orchestrator ships what such an instance needs in `orchestrator/openspace/`:
//! - `webrtc.cfg`, passed with `--file`: runs the installation's own `openspace.cfg`, then
//!   switches the module on and gives each instance its own log folder and API ports;
//! - `stream-window.json`, passed with `--config`: one 1280×720 window (the streamed one);
//! - `stream.profile`, passed with `--profile` unless another profile is configured: a scene
//!   of example assets that needs no downloaded data.
//!
//! Mesa's software GL (llvmpipe, under Xvfb) offers OpenGL 4.5 and SGCT asks for 4.6, so the
//! instance environment carries Mesa's version overrides; other GL drivers ignore them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::InstanceCommand;

/// Environment every OpenSpace instance gets (the configured instance env may override it).
const MESA_OVERRIDES: [(&str, &str); 2] = [
    ("MESA_GL_VERSION_OVERRIDE", "4.6"),
    ("MESA_GLSL_VERSION_OVERRIDE", "460"),
];

/// Why an OpenSpace folder cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenSpaceError {
    /// No `bin/OpenSpace` in the folder.
    #[error(
        "{0} has no bin/OpenSpace: point --openspace at the folder of an OpenSpace build \
         (the one that holds openspace.cfg and bin/)"
    )]
    NoExecutable(PathBuf),
    /// No `openspace.cfg` in the folder.
    #[error("{0} has no openspace.cfg: point --openspace at the root of an OpenSpace build")]
    NoConfiguration(PathBuf),
    /// The shipped files are missing next to this binary's sources.
    #[error("the OpenSpace instance files are missing from {0} (webrtc.cfg, stream-window.json)")]
    NoFiles(PathBuf),
}

/// The folder of the files shipped for OpenSpace instances, `<repo>/orchestrator/openspace`
/// of the repository this binary was built from.
pub fn files_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("openspace")
}

/// The command that runs the OpenSpace build in `root` with the shipped configuration from
/// `files`, starting `profile` (a name OpenSpace looks up, or a path; `None`: the shipped
/// `stream.profile`).
pub fn openspace_command(
    root: &Path,
    profile: Option<&str>,
    files: &Path,
) -> Result<InstanceCommand, OpenSpaceError> {
    let executable = root.join("bin/OpenSpace");
    if !executable.is_file() {
        return Err(OpenSpaceError::NoExecutable(root.to_path_buf()));
    }
    let shipped_cfg = root.join("openspace.cfg");
    if !shipped_cfg.is_file() {
        return Err(OpenSpaceError::NoConfiguration(root.to_path_buf()));
    }
    let cfg = files.join("webrtc.cfg");
    let window = files.join("stream-window.json");
    if !cfg.is_file() || !window.is_file() {
        return Err(OpenSpaceError::NoFiles(files.to_path_buf()));
    }
    let profile = profile.map_or_else(
        || files.join("stream.profile").display().to_string(),
        str::to_string,
    );
    let mut env: BTreeMap<String, String> = MESA_OVERRIDES
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    env.insert(
        "OSW_OPENSPACE_CFG".to_string(),
        shipped_cfg.display().to_string(),
    );
    // The named views the owner's page offers (webrtc.cfg hands the folder to the module).
    let views = files.join("views");
    if views.is_dir() {
        env.insert("OSW_VIEWS_FOLDER".to_string(), views.display().to_string());
    }
    Ok(InstanceCommand {
        executable,
        args: vec![
            "--file".into(),
            cfg.display().to_string(),
            "--config".into(),
            window.display().to_string(),
            "--profile".into(),
            profile,
            "--bypassLauncher".into(),
        ],
        working_dir: Some(root.to_path_buf()),
        env,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_root(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("osw-openspace-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("bin")).unwrap();
        std::fs::write(dir.join("bin/OpenSpace"), "").unwrap();
        std::fs::write(dir.join("openspace.cfg"), "").unwrap();
        dir
    }

    #[test]
    fn the_command_uses_the_shipped_configuration_window_and_profile() {
        let root = fake_root("ok");
        let command = openspace_command(&root, None, &files_dir()).unwrap();
        assert_eq!(command.executable, root.join("bin/OpenSpace"));
        assert_eq!(command.working_dir.as_deref(), Some(root.as_path()));
        let arg = |flag: &str| {
            let at = command.args.iter().position(|a| a == flag).unwrap();
            command.args[at + 1].clone()
        };
        assert!(arg("--file").ends_with("orchestrator/openspace/webrtc.cfg"));
        assert!(arg("--config").ends_with("orchestrator/openspace/stream-window.json"));
        assert!(arg("--profile").ends_with("orchestrator/openspace/stream.profile"));
        assert!(command.args.contains(&"--bypassLauncher".to_string()));
        assert_eq!(
            command.env["OSW_OPENSPACE_CFG"],
            root.join("openspace.cfg").display().to_string()
        );
        assert_eq!(command.env["MESA_GL_VERSION_OVERRIDE"], "4.6");
        assert!(command.env["OSW_VIEWS_FOLDER"].ends_with("orchestrator/openspace/views"));
        let named = openspace_command(&root, Some("default"), &files_dir()).unwrap();
        assert!(named.args.windows(2).any(|w| w == ["--profile", "default"]));
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_folder_that_is_not_an_openspace_build_is_refused_with_a_reason() {
        let root = fake_root("bad");
        std::fs::remove_file(root.join("openspace.cfg")).unwrap();
        let err = openspace_command(&root, None, &files_dir()).unwrap_err();
        assert!(matches!(err, OpenSpaceError::NoConfiguration(_)), "{err}");
        std::fs::remove_file(root.join("bin/OpenSpace")).unwrap();
        let err = openspace_command(&root, None, &files_dir()).unwrap_err();
        assert!(err.to_string().contains("has no bin/OpenSpace"), "{err}");
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn the_shipped_files_are_valid() {
        let files = files_dir();
        let window: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(files.join("stream-window.json")).unwrap(),
        )
        .unwrap();
        let nodes = window["nodes"].as_array().unwrap();
        assert_eq!(nodes.len(), 1, "one node: SGCT opens no cluster ports");
        assert_eq!(
            nodes[0]["windows"].as_array().unwrap().len(),
            1,
            "one window: the streamed one"
        );
        let profile: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(files.join("stream.profile")).unwrap())
                .unwrap();
        assert_eq!(profile["keybindings"][0]["key"], "P");
        let cfg = std::fs::read_to_string(files.join("webrtc.cfg")).unwrap();
        for variable in [
            "OSW_OPENSPACE_CFG",
            "OSW_INSTANCE_ID",
            "OSW_API_WEBSOCKET_PORT",
        ] {
            assert!(cfg.contains(variable), "webrtc.cfg reads {variable}");
        }
    }
}
