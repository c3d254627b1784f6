//! A Jira body (a description or a comment) from plain text: Atlassian Document Format for Cloud
//! (REST v3) or wiki markup for Data Center (REST v2), at most 32,767 characters (for ADF, the
//! document as JSON), cut with `…`.
//!
//! Blank lines separate paragraphs, single line breaks are kept, text between two lines of
//! ```` ``` ```` is a code block, `http(s)://` links are links (ADF). In wiki markup every character
//! that would format (`*`, `_`, `{`, `[`, `|`, …) is escaped, so alert text is shown as written:
//! templates write plain text, not markup.

use serde_json::{Value, json};

pub const MAX_DESCRIPTION_CHARS: usize = 32_767;

/// Which body format the Jira at the other end takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    /// Jira Cloud, REST API v3: Atlassian Document Format.
    Adf,
    /// Jira Data Center / Server, REST API v2: wiki markup.
    Wiki,
}

/// `text` cut to at most `max` characters, ending with `…` when cut.
pub fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Plain text as a Jira body (a description or a comment) in `format`, within 32,767 characters.
pub fn body(text: &str, format: BodyFormat) -> Value {
    let text = clean(text);
    let build = |t: &str| match format {
        BodyFormat::Adf => adf(t),
        BodyFormat::Wiki => Value::String(wiki(t)),
    };
    let size = |v: &Value| match v {
        Value::String(s) => s.chars().count(),
        other => other.to_string().chars().count(),
    };
    let mut keep = text.chars().count().min(MAX_DESCRIPTION_CHARS);
    loop {
        let candidate = truncate(&text, keep);
        let value = build(&candidate);
        let over = size(&value).saturating_sub(MAX_DESCRIPTION_CHARS);
        if over == 0 || keep == 0 {
            return value;
        }
        // Markup makes the body longer than its text: cut the text by the excess and try again.
        keep = keep.saturating_sub(over.max(16));
    }
}

/// Line breaks as `\n`; control characters other than line breaks and tabs dropped.
fn clean(text: &str) -> String {
    text.replace("\r\n", "\n")
        .replace('\r', "\n")
        .chars()
        .filter(|c| !c.is_control() || *c == '\n' || *c == '\t')
        .collect()
}

/// A body's blocks: paragraphs (lines) and fenced code (language, text).
enum Block<'a> {
    Paragraph(Vec<&'a str>),
    Code(&'a str, String),
}

fn blocks(text: &str) -> Vec<Block<'_>> {
    let mut out = Vec::new();
    let mut lines = text.split('\n');
    let mut paragraph: Vec<&str> = Vec::new();
    while let Some(line) = lines.next() {
        if let Some(language) = line.trim_start().strip_prefix("```") {
            if !paragraph.is_empty() {
                out.push(Block::Paragraph(std::mem::take(&mut paragraph)));
            }
            let mut code = Vec::new();
            for inner in lines.by_ref() {
                if inner.trim() == "```" {
                    break;
                }
                code.push(inner);
            }
            out.push(Block::Code(language.trim(), code.join("\n")));
        } else if line.trim().is_empty() {
            if !paragraph.is_empty() {
                out.push(Block::Paragraph(std::mem::take(&mut paragraph)));
            }
        } else {
            paragraph.push(line);
        }
    }
    if !paragraph.is_empty() {
        out.push(Block::Paragraph(paragraph));
    }
    out
}

/// Atlassian Document Format: `{"type":"doc","version":1,"content":[…]}` of paragraphs (lines
/// joined by hard breaks, links marked) and code blocks.
fn adf(text: &str) -> Value {
    let content: Vec<Value> = blocks(text)
        .into_iter()
        .map(|block| match block {
            Block::Paragraph(lines) => {
                let mut inline = Vec::new();
                for (i, line) in lines.iter().enumerate() {
                    if i > 0 {
                        inline.push(json!({"type": "hardBreak"}));
                    }
                    inline.extend(adf_text(line));
                }
                json!({"type": "paragraph", "content": inline})
            }
            Block::Code(language, code) => {
                let mut block = json!({"type": "codeBlock"});
                if !language.is_empty() {
                    block["attrs"] = json!({"language": language});
                }
                if !code.is_empty() {
                    block["content"] = json!([{"type": "text", "text": code}]);
                }
                block
            }
        })
        .collect();
    json!({"type": "doc", "version": 1, "content": content})
}

/// One line as ADF text nodes (never empty ones), `http(s)://` links marked as links.
fn adf_text(line: &str) -> Vec<Value> {
    let mut nodes = Vec::new();
    for (piece, is_link) in split_links(line) {
        if piece.is_empty() {
            continue;
        }
        if is_link {
            nodes.push(json!({"type": "text", "text": piece, "marks": [{"type": "link", "attrs": {"href": piece}}]}));
        } else {
            nodes.push(json!({"type": "text", "text": piece}));
        }
    }
    nodes
}

/// A line cut into text and links (`http://` or `https://` up to white space).
fn split_links(line: &str) -> Vec<(&str, bool)> {
    let mut out = Vec::new();
    let mut rest = line;
    while let Some(start) = [rest.find("https://"), rest.find("http://")]
        .into_iter()
        .flatten()
        .min()
    {
        let end = rest[start..]
            .find(char::is_whitespace)
            .map_or(rest.len(), |e| start + e);
        // A link does not end with the punctuation that closes its sentence.
        let trimmed = rest[start..end].trim_end_matches(['.', ',', ';', ':', ')', '!', '?', '"', '\'']);
        let end = start + trimmed.len();
        if trimmed.len() <= "https://".len() {
            out.push((&rest[..end.max(start + 1)], false));
            rest = &rest[end.max(start + 1)..];
            continue;
        }
        out.push((&rest[..start], false));
        out.push((&rest[start..end], true));
        rest = &rest[end..];
    }
    out.push((rest, false));
    out
}

/// Wiki markup: paragraphs separated by a blank line, line breaks kept, code in `{noformat}`,
/// every formatting character escaped.
fn wiki(text: &str) -> String {
    let mut out = Vec::new();
    for block in blocks(text) {
        match block {
            Block::Paragraph(lines) => {
                out.push(lines.iter().map(|l| wiki_line(l)).collect::<Vec<_>>().join("\n"));
            }
            Block::Code(_, code) => {
                // Nothing inside {noformat} is markup but its own end.
                out.push(format!(
                    "{{noformat}}\n{}\n{{noformat}}",
                    code.replace("{noformat}", "{noformat\u{200b}}")
                ));
            }
        }
    }
    out.join("\n\n")
}

/// One line of text as wiki markup that shows it as written.
fn wiki_line(line: &str) -> String {
    let chars: Vec<char> = line.chars().collect();
    let mut out = String::with_capacity(line.len());
    for (i, &c) in chars.iter().enumerate() {
        let inside_word = |k: Option<usize>| k.and_then(|k| chars.get(k)).is_some_and(|c| c.is_alphanumeric());
        match c {
            '\\' => out.push_str("&#92;"),
            '&' => out.push_str("&amp;"),
            '{' | '}' | '[' | ']' | '|' | '!' => {
                out.push('\\');
                out.push(c);
            }
            // Emphasis, lists, headings' friends: they format only at a word's edge.
            '*' | '_' | '-' | '+' | '^' | '~' | '?' | '#'
                if !(inside_word(i.checked_sub(1)) && inside_word(Some(i + 1))) =>
            {
                out.push('\\');
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    // `h1. ` … `h6. ` and `bq. ` at the start of a line make headings and quotes.
    for prefix in ["h1.", "h2.", "h3.", "h4.", "h5.", "h6.", "bq."] {
        if let Some(rest) = out.strip_prefix(prefix) {
            return format!("{}&#46;{rest}", &prefix[..prefix.len() - 1]);
        }
    }
    out
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(in crate::tickets) fn text_of(adf: &Value) -> String {
        match adf {
            Value::Object(o) => {
                let own = o.get("text").and_then(Value::as_str).unwrap_or("").to_owned();
                own + &o.get("content").map(text_of).unwrap_or_default()
            }
            Value::Array(items) => items.iter().map(text_of).collect(),
            _ => String::new(),
        }
    }

    /// Checks the ADF rules Jira enforces on what Herald makes: a versioned doc of paragraphs and
    /// code blocks; paragraphs hold text (never empty), hard breaks; marks are links with an href.
    pub(in crate::tickets) fn assert_valid_adf(doc: &Value) {
        assert_eq!(doc["type"], "doc");
        assert_eq!(doc["version"], 1);
        for block in doc["content"].as_array().unwrap() {
            match block["type"].as_str().unwrap() {
                "paragraph" => {
                    let inline = block["content"].as_array().unwrap();
                    assert!(!inline.is_empty(), "{block}");
                    for node in inline {
                        match node["type"].as_str().unwrap() {
                            "hardBreak" => assert_eq!(node.as_object().unwrap().len(), 1),
                            "text" => {
                                assert!(!node["text"].as_str().unwrap().is_empty(), "{node}");
                                for mark in node["marks"].as_array().into_iter().flatten() {
                                    assert_eq!(mark["type"], "link");
                                    assert!(mark["attrs"]["href"].as_str().unwrap().starts_with("http"));
                                }
                            }
                            other => panic!("unexpected inline node {other}"),
                        }
                    }
                }
                "codeBlock" => {
                    for node in block["content"].as_array().into_iter().flatten() {
                        assert_eq!(node["type"], "text");
                        assert!(node.get("marks").is_none());
                        assert!(!node["text"].as_str().unwrap().is_empty());
                    }
                }
                other => panic!("unexpected block {other}"),
            }
        }
    }

    #[test]
    fn adf_has_paragraphs_breaks_code_and_links() {
        let doc = body(
            "First line\nsecond line\n\n\nSee https://grafana.example/d/1, then act.\n```sh\ndf -h\n\n```\n```\n```",
            BodyFormat::Adf,
        );
        assert_valid_adf(&doc);
        let content = doc["content"].as_array().unwrap();
        assert_eq!(content.len(), 4, "{doc}");
        assert_eq!(content[0]["content"][1], json!({"type": "hardBreak"}));
        assert_eq!(
            content[1]["content"][1]["marks"][0]["attrs"]["href"],
            "https://grafana.example/d/1"
        );
        assert_eq!(content[1]["content"][2]["text"], ", then act.");
        assert_eq!(
            content[2],
            json!({"type": "codeBlock", "attrs": {"language": "sh"},
            "content": [{"type": "text", "text": "df -h\n"}]})
        );
        assert_eq!(content[3], json!({"type": "codeBlock"}));
        assert_eq!(
            body("", BodyFormat::Adf),
            json!({"type": "doc", "version": 1, "content": []})
        );
    }

    #[test]
    fn wiki_markup_shows_text_as_written() {
        let wiki = body(
            "*bold* _it_ {code} [link] a|b !img! \\\\ AT&T\nweb-01 snake_case -strike-\nh1. not a heading\n\n```\n{noformat} *raw*\n```",
            BodyFormat::Wiki,
        );
        assert_eq!(
            wiki.as_str().unwrap(),
            "\\*bold\\* \\_it\\_ \\{code\\} \\[link\\] a\\|b \\!img\\! &#92;&#92; AT&amp;T\n\
             web-01 snake_case \\-strike\\-\nh1&#46; not a heading\n\n\
             {noformat}\n{noformat\u{200b}} *raw*\n{noformat}"
        );
    }
}
