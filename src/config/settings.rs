//! The optional settings file `/etc/wgfw/IFACE.conf`: `name = value` lines using the long
//! options' names (`allow = tcp/443`, `no-nat = yes`); repeatable options may repeat. `#` and `;`
//! start comments; a `[section]` header is accepted and ignored.

use std::path::{Path, PathBuf};

use crate::config::cli::{FLAGS, Options};
use crate::config::trust;
use crate::config::types::IfaceName;
use crate::error::{Error, Result};

pub const DIR: &str = "/etc/wgfw";

pub fn path_for(iface: &IfaceName) -> PathBuf {
    Path::new(DIR).join(format!("{iface}.conf"))
}

/// Reads the settings file (refused when another user could have written it); a missing file
/// means no settings.
pub fn read(path: &Path) -> Result<Options> {
    match trust::read(path)? {
        Some(bytes) => parse(path, &String::from_utf8_lossy(&bytes)),
        None => Ok(Options::default()),
    }
}

pub fn parse(path: &Path, text: &str) -> Result<Options> {
    let mut options = Options::default();
    for (i, raw) in text.lines().enumerate() {
        let err = |msg: String| Error::usage(format!("{}:{}: {msg}", path.display(), i + 1));
        let line = raw.split(['#', ';']).next().unwrap_or("").trim();
        if line.is_empty() || (line.starts_with('[') && line.ends_with(']')) {
            continue;
        }
        let (key, value) = match line.split_once('=') {
            Some((k, v)) => (k.trim().to_ascii_lowercase(), Some(v.trim())),
            None => (line.to_ascii_lowercase(), None),
        };
        let key = key.replace('_', "-");
        let known = FLAGS.iter().any(|f| f.in_settings && f.long == key);
        if !known {
            return Err(err(format!("\"{key}\" is not a setting")));
        }
        options
            .set(&key, value)
            .map_err(|e| err(format!("{key}: {e}")))?;
    }
    Ok(options)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Result<Options> {
        parse(Path::new("/etc/wgfw/wg0.conf"), text)
    }

    #[test]
    fn reads_long_option_names() {
        let o = p(
            "# office gateway\n[wgfw]\nwan = eth1\nallow = tcp/443 ; web\nallow = udp/53\n\
                   admin = 192.0.2.0/24\nno-nat = yes\nno_log\nssh-port = none\n",
        )
        .unwrap();
        assert_eq!(o.wan.unwrap().as_str(), "eth1");
        assert_eq!(o.allow.len(), 2);
        assert_eq!(o.admin.len(), 1);
        assert!(o.no_nat && o.no_log && !o.nat6);
        assert_eq!(o.ssh_port, Some(None));
    }

    #[test]
    fn errors_name_file_and_line() {
        assert_eq!(
            p("wan = eth0\nfrobnicate = 1\n").unwrap_err().to_string(),
            "/etc/wgfw/wg0.conf:2: \"frobnicate\" is not a setting"
        );
        assert_eq!(
            p("\npolicy = maybe\n").unwrap_err().to_string(),
            "/etc/wgfw/wg0.conf:2: policy: \"maybe\" is not a policy (auto, drop, accept)"
        );
        assert!(p("verbose = 1\n").is_err());
        assert!(p("no-nat = perhaps\n").is_err());
    }

    #[test]
    fn missing_file_is_no_settings() {
        assert_eq!(
            read(Path::new("/nonexistent/wgfw/wg0.conf")).unwrap(),
            Options::default()
        );
    }
}
