//! Where values come from: the layers (defaults, `herald.toml`, the environment, flags) and the
//! reading of the configuration file.

use std::collections::BTreeMap;
use std::path::Path;

use super::declare::{Key, Meta};
use super::sections;
use super::{ConfigError, Origin};
use crate::store::redact_url;

/// Values given on the command line, by key name (`listen`, `data_dir`, …).
pub type FlagValues = BTreeMap<&'static str, String>;

/// The raw value of each key and where it came from, before parsing.
pub(super) struct Layers {
    values: BTreeMap<&'static str, (String, Origin)>,
}

impl Layers {
    /// Every declared key's value from the highest layer that gives one.
    pub(super) fn gather(
        config_file: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
        flags: &FlagValues,
    ) -> Result<Layers, ConfigError> {
        let mut values = BTreeMap::new();
        for key in sections::all() {
            if let Some(default) = key.default {
                values.insert(key.name, (default.to_owned(), Origin::Default));
            }
        }
        if let Some(path) = config_file {
            for (name, value) in read_config_file(path)? {
                values.insert(name, (value, Origin::File(path.to_owned())));
            }
        }
        for key in sections::all() {
            let var = key.env();
            if let Some(value) = env(&var) {
                values.insert(key.name, (value, Origin::Env(var)));
            }
        }
        for key in sections::all() {
            if let (Some(value), Some(flag)) = (flags.get(key.name), key.flag_name()) {
                values.insert(key.name, (value.clone(), Origin::Flag(flag)));
            }
        }
        Ok(Layers { values })
    }

    /// The key's value, or `None` when no layer gives one; a value the key's parser refuses is an error
    /// naming the variable, where the value came from, the value (unless secret) and what is allowed.
    pub(super) fn optional<T>(&self, key: &Key<T>) -> Result<Option<T>, ConfigError> {
        let Some((raw, origin)) = self.values.get(key.meta.name) else {
            return Ok(None);
        };
        match (key.parse)(raw.trim()) {
            Some(value) => Ok(Some(value)),
            None => Err(ConfigError::Invalid {
                key: key.meta.env(),
                value: shown(&key.meta, raw),
                origin: origin.clone(),
                expected: key.meta.expected.to_owned(),
            }),
        }
    }

    /// The value of a key that has a default.
    pub(super) fn required<T>(&self, key: &Key<T>) -> Result<T, ConfigError> {
        // Every key read this way has a default (the unit tests load the defaults), so absence is a bug.
        self.optional(key)?.ok_or_else(|| ConfigError::Invalid {
            key: key.meta.env(),
            value: "nothing".to_owned(),
            origin: Origin::Default,
            expected: key.meta.expected.to_owned(),
        })
    }
}

/// A raw value as an error may show it: never a secret, and a URL without its password.
fn shown(key: &Meta, raw: &str) -> String {
    if key.secret {
        "<redacted>".to_owned()
    } else {
        format!("{:?}", redact_url(raw))
    }
}

fn read_config_file(path: &Path) -> Result<Vec<(&'static str, String)>, ConfigError> {
    let file_error = |reason: String| ConfigError::File {
        path: path.to_owned(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| file_error(e.to_string()))?;
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| file_error(e.to_string()))?;
    let mut out = Vec::new();
    for (name, value) in table {
        let Some(key) = sections::all().find(|k| k.name == name) else {
            let known = sections::all().map(|k| k.name).collect::<Vec<_>>().join(", ");
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
                    key: key.name.to_owned(),
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
