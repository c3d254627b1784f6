//! How a setting is declared: once, with everything that is said about it.
//!
//! A [`Key`] names the setting (`listen`), which gives its `herald.toml` key, its environment variable
//! (`HERALD_LISTEN`) and, when it has one, its flag (`--listen`). It carries its default, the sentence
//! that documents it, what a valid value looks like and the parser that checks it. The loader, the
//! command line's flags and help, and the test that holds `docs/configuration.md` to the declarations
//! all read the same [`Meta`]; nothing about a setting is written twice.

/// The sections of the settings, in the order `docs/configuration.md` lists them. Each is one table
/// there, and one field of [`super::Settings`] that the service it configures takes whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Section {
    Http,
    Database,
    Logging,
    Auth,
    Console,
    Mail,
    Smtp,
    Checks,
    Cluster,
    Alerts,
    Tickets,
}

impl Section {
    /// The heading of the section's table in `docs/configuration.md`.
    pub fn title(self) -> &'static str {
        match self {
            Section::Http => "HTTP server",
            Section::Database => "Data and database",
            Section::Logging => "Logging",
            Section::Auth => "Users and sign-in",
            Section::Console => "Console",
            Section::Mail => "Mail queue and delivery",
            Section::Smtp => "SMTP submission",
            Section::Checks => "Integration checks",
            Section::Cluster => "Cluster",
            Section::Alerts => "Health alerts",
            Section::Tickets => "Tickets",
        }
    }
}

/// Where a setting can be given on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flag {
    /// Only in `herald.toml` or the environment.
    None,
    /// A flag of every command (the value's name in `--help`, such as `DIR`).
    Global(&'static str),
    /// A flag of `herald serve`.
    Serve(&'static str),
}

/// What is known of a setting, whatever its type.
#[derive(Debug)]
pub struct Meta {
    /// The key in `herald.toml`; the environment variable and the flag are derived from it.
    pub name: &'static str,
    pub section: Section,
    pub flag: Flag,
    /// The value used when no source gives one.
    pub default: Option<&'static str>,
    /// The default as the documentation words it when it is not a plain value (`key file`).
    pub default_prose: Option<&'static str>,
    /// The documentation's sentence (Markdown), also the flag's help.
    pub meaning: &'static str,
    /// What a valid value looks like, for the error that refuses one.
    pub expected: &'static str,
    /// Never echoed: errors show `<redacted>` instead of the value.
    pub secret: bool,
}

impl Meta {
    /// The environment variable: `HERALD_` and the key in capitals.
    pub fn env(&self) -> String {
        format!("HERALD_{}", self.name.to_ascii_uppercase())
    }

    /// The flag's long name (`--data-dir`), if the setting has a flag.
    pub fn flag_name(&self) -> Option<String> {
        match self.flag {
            Flag::None => None,
            Flag::Global(_) | Flag::Serve(_) => Some(format!("--{}", self.name.replace('_', "-"))),
        }
    }

    /// The default as documented: a code span for a value, the prose otherwise, `none` when there is none.
    pub fn documented_default(&self) -> String {
        match (self.default_prose, self.default) {
            (Some(prose), _) => prose.to_owned(),
            (None, Some(value)) if !value.is_empty() => format!("`{value}`"),
            (None, _) => "none".to_owned(),
        }
    }

    /// The setting's row in its table of `docs/configuration.md`.
    pub fn documentation_row(&self) -> String {
        let code = |s: &str| format!("`{s}`");
        let cells = [
            code(self.name),
            code(&self.env()),
            self.flag_name().map(|f| code(&f)).unwrap_or_default(),
            self.documented_default(),
            self.meaning.to_owned(),
        ];
        cells.iter().fold("|".to_owned(), |row, cell| match cell.as_str() {
            "" => row + " |",
            cell => row + " " + cell + " |",
        })
    }

    /// The flag's help: the documentation's sentence as plain text, its variable and its default.
    pub fn help(&self) -> String {
        let mut sentence = plain(self.meaning);
        if let Some(first) = sentence.get(..1) {
            sentence = first.to_ascii_uppercase() + &sentence[1..];
        }
        format!(
            "{sentence} [env: {}] [default: {}]",
            self.env(),
            plain(&self.documented_default())
        )
    }
}

/// Markdown as plain text: code spans lose their backticks, links keep only their text.
fn plain(markdown: &str) -> String {
    let mut out = String::with_capacity(markdown.len());
    let mut rest = markdown;
    while let Some(c) = rest.chars().next() {
        if c == '[' {
            if let Some((text, after)) = rest[1..].split_once("](") {
                if let Some((_, tail)) = after.split_once(')') {
                    out.push_str(text);
                    rest = tail;
                    continue;
                }
            }
        }
        if c != '`' {
            out.push(c);
        }
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// One setting of type `T`: its [`Meta`] and the parser that turns a raw value into a `T`, or refuses it.
pub struct Key<T> {
    pub meta: Meta,
    pub parse: fn(&str) -> Option<T>,
}

impl<T> Key<T> {
    /// A setting of `section` with neither flag nor default, documented by `meaning`, that accepts
    /// what `parse` accepts (described by `expected`).
    pub const fn new(
        section: Section,
        name: &'static str,
        meaning: &'static str,
        expected: &'static str,
        parse: fn(&str) -> Option<T>,
    ) -> Key<T> {
        Key {
            meta: Meta {
                name,
                section,
                flag: Flag::None,
                default: None,
                default_prose: None,
                meaning,
                expected,
                secret: false,
            },
            parse,
        }
    }

    pub const fn flag(mut self, flag: Flag) -> Key<T> {
        self.meta.flag = flag;
        self
    }

    pub const fn default(mut self, value: &'static str) -> Key<T> {
        self.meta.default = Some(value);
        self
    }

    /// How the documentation words the default, when it is not a plain value.
    pub const fn default_prose(mut self, prose: &'static str) -> Key<T> {
        self.meta.default_prose = Some(prose);
        self
    }

    pub const fn secret(mut self) -> Key<T> {
        self.meta.secret = true;
        self
    }
}

/// Declares a section's keys as constants, and `KEYS`, the list of their [`Meta`] in declaration
/// order (the order of their rows in the documentation).
macro_rules! keys {
    ($( $(#[$attr:meta])* $name:ident: $ty:ty = $key:expr; )*) => {
        $( $(#[$attr])* pub(super) const $name: $crate::config::declare::Key<$ty> = $key; )*
        pub(super) const KEYS: &[&$crate::config::declare::Meta] = &[$( &$name.meta ),*];
    };
}
pub(super) use keys;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_becomes_plain_text_for_help() {
        assert_eq!(
            plain("must follow the [password rule](security.md#passwords); `0s` disables"),
            "must follow the password rule; 0s disables"
        );
        assert_eq!(plain("[not a link"), "[not a link");
    }

    #[test]
    fn the_environment_variable_and_flag_derive_from_the_name() {
        const K: Key<u32> = Key::new(Section::Http, "body_limit", "the `limit`", "a number", |s| {
            s.parse().ok()
        })
        .flag(Flag::Serve("N"))
        .default("5");
        assert_eq!(K.meta.env(), "HERALD_BODY_LIMIT");
        assert_eq!(K.meta.flag_name().as_deref(), Some("--body-limit"));
        assert_eq!(
            K.meta.documentation_row(),
            "| `body_limit` | `HERALD_BODY_LIMIT` | `--body-limit` | `5` | the `limit` |"
        );
        assert_eq!(K.meta.help(), "The limit [env: HERALD_BODY_LIMIT] [default: 5]");
    }
}
