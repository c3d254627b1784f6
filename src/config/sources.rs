//! Where values come from: the layers (defaults, `herald.toml`, the environment, flags) and the
//! reading of the configuration file.

use std::collections::BTreeMap;
use std::path::Path;

use super::keys::KEYS;
use super::{ConfigError, Origin};
use crate::store::redact_url;

/// Values given on the command line, by key name (`listen`, `data_dir`, …).
pub type FlagValues = BTreeMap<&'static str, String>;

/// The raw value of each key and where it came from, before parsing.
pub(super) struct Layers {
    pub(super) values: BTreeMap<&'static str, (String, Origin)>,
}

impl Layers {
    pub(super) fn get(&self, name: &'static str) -> Option<&(String, Origin)> {
        self.values.get(name)
    }

    pub(super) fn parse<T>(
        &self,
        name: &'static str,
        expected: &str,
        parse: impl FnOnce(&str) -> Option<T>,
    ) -> Result<Option<T>, ConfigError> {
        let Some((raw, origin)) = self.get(name) else {
            return Ok(None);
        };
        match parse(raw.trim()) {
            Some(value) => Ok(Some(value)),
            None => {
                let key = KEYS.iter().find(|k| k.name == name).map_or(name, |k| k.env);
                // A value that carries a URL (HERALD_DATABASE_URL) is shown without its password.
                let value = if KEYS.iter().any(|k| k.name == name && k.secret) {
                    "<redacted>".to_owned()
                } else {
                    format!("{:?}", redact_url(raw))
                };
                Err(ConfigError::Invalid {
                    key,
                    value,
                    origin: origin.clone(),
                    expected: expected.to_owned(),
                })
            }
        }
    }

    pub(super) fn required<T>(
        &self,
        name: &'static str,
        expected: &str,
        parse: impl FnOnce(&str) -> Option<T>,
    ) -> Result<T, ConfigError> {
        // Every required key has a default, so absence is a programming error caught by the unit tests.
        self.parse(name, expected, parse)?.ok_or_else(|| ConfigError::Invalid {
            key: name,
            value: "nothing".to_owned(),
            origin: Origin::Default,
            expected: expected.to_owned(),
        })
    }
}

pub(super) fn read_config_file(path: &Path) -> Result<Vec<(&'static str, String)>, ConfigError> {
    let file_error = |reason: String| ConfigError::File {
        path: path.to_owned(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| file_error(e.to_string()))?;
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| file_error(e.to_string()))?;
    let mut out = Vec::new();
    for (name, value) in table {
        let Some(key) = KEYS.iter().find(|k| k.name == name) else {
            let known = KEYS.iter().map(|k| k.name).collect::<Vec<_>>().join(", ");
            return Err(ConfigError::UnknownKey {
                key: name,
                path: path.to_owned(),
                known,
            });
        };
        let text = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(n) => n.to_string(),
            toml::Value::Float(n) => n.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            // A list (`trusted_proxies = ["10.0.0.0/8"]`) is the comma-separated form.
            toml::Value::Array(items) if items.iter().all(toml::Value::is_str) => items
                .iter()
                .filter_map(toml::Value::as_str)
                .collect::<Vec<_>>()
                .join(","),
            other => {
                return Err(ConfigError::Invalid {
                    key: key.name,
                    value: if key.secret {
                        "<redacted>".into()
                    } else {
                        redact_url(&other.to_string())
                    },
                    origin: Origin::File(path.to_owned()),
                    expected: "a string, number or boolean".into(),
                });
            }
        };
        out.push((key.name, text));
    }
    Ok(out)
}
