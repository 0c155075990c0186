//! A small parser for OpenWrt's UCI file format, following libuci's `file.c`.
//!
//! What it accepts, as libuci does:
//!
//! - commands `package NAME`, `config TYPE [NAME]`, `option NAME [VALUE]`, `list NAME [VALUE]`,
//!   also abbreviated to their first letter (`p`, `c`, `o`, `l`);
//! - several commands on one line separated by `;`;
//! - comments from a `#` outside quotes to the end of the line (also after a command);
//! - arguments unquoted, `'single'` or `"double"` quoted; adjacent parts concatenate, so
//!   `'it'\''s'` is `it's`;
//! - a backslash outside single quotes takes the next character literally (no `\n`-style
//!   decoding, as libuci); a backslash at the end of a line continues the argument on the next
//!   line;
//! - quoted strings may span lines (the newlines are part of the value);
//! - option and section names of letters, digits and `_`; types of printable ASCII;
//! - `option NAME ''` (or without a value) deletes the option, `list` after `option` turns the
//!   option into a list, `option` after `list` replaces the list.
//!
//! Every section, option and list item remembers the line it started on. Unlike libuci this
//! does not merge sections that share a name: that is left to the caller (which rejects it).

use std::collections::HashMap;

/// A parse error: the line (1-based) and what was expected there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ParseError {
    pub line: usize,
    pub msg: String,
}

/// The value of an option.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Value {
    /// `option NAME 'VALUE'`.
    Single(String),
    /// `list NAME 'VALUE'` lines, each item with its line.
    List(Vec<(String, usize)>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct UciOption {
    pub name: String,
    /// Line of the `option` that last set it, or of the `list` that started (or made) the list.
    pub line: usize,
    pub value: Value,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Section {
    pub stype: String,
    /// `None` for an anonymous section.
    pub name: Option<String>,
    /// Line of the `config` command.
    pub line: usize,
    /// Options in the order they were first set.
    pub options: Vec<UciOption>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Package {
    /// `package NAME` and its line, if the file has one.
    pub name: Option<(String, usize)>,
    pub sections: Vec<Section>,
}

/// One argument of a command.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Word {
    text: String,
    line: usize,
}

fn err<T>(line: usize, msg: impl Into<String>) -> Result<T, ParseError> {
    Err(ParseError {
        line,
        msg: msg.into(),
    })
}

/// Whitespace between arguments (C `isspace` minus the newline, which ends a command).
fn is_blank(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\x0b' | '\x0c')
}

/// Splits the text into commands: lists of words, each with its line.
struct Lexer<'a> {
    chars: std::iter::Peekable<std::str::Chars<'a>>,
    line: usize,
}

impl<'a> Lexer<'a> {
    fn new(text: &'a str) -> Self {
        Lexer {
            chars: text.chars().peekable(),
            line: 1,
        }
    }

    /// After a backslash (already consumed): true if it was a line continuation (consumed),
    /// false if the next character is to be taken literally (not consumed).
    fn continuation(&mut self) -> bool {
        match self.chars.peek() {
            Some('\n') => {
                self.chars.next();
                self.line += 1;
                true
            }
            Some('\r') => {
                let mut ahead = self.chars.clone();
                ahead.next();
                if ahead.peek() == Some(&'\n') {
                    self.chars.next();
                    self.chars.next();
                    self.line += 1;
                    true
                } else {
                    false
                }
            }
            _ => false,
        }
    }

    fn word(&mut self) -> Result<Word, ParseError> {
        let line = self.line;
        let mut text = String::new();
        while let Some(&c) = self.chars.peek() {
            match c {
                c if is_blank(c) || c == '\n' || c == '#' || c == ';' => break,
                '\'' => {
                    let open = self.line;
                    self.chars.next();
                    loop {
                        match self.chars.next() {
                            None => return err(open, "unterminated ' quote (opened here)"),
                            Some('\'') => break,
                            Some(c) => {
                                if c == '\n' {
                                    self.line += 1;
                                }
                                text.push(c);
                            }
                        }
                    }
                }
                '"' => {
                    let open = self.line;
                    self.chars.next();
                    loop {
                        match self.chars.next() {
                            None => return err(open, "unterminated \" quote (opened here)"),
                            Some('"') => break,
                            Some('\\') => {
                                if !self.continuation() {
                                    match self.chars.next() {
                                        None => {
                                            return err(open, "unterminated \" quote (opened here)")
                                        }
                                        Some(c) => {
                                            if c == '\n' {
                                                self.line += 1;
                                            }
                                            text.push(c);
                                        }
                                    }
                                }
                            }
                            Some(c) => {
                                if c == '\n' {
                                    self.line += 1;
                                }
                                text.push(c);
                            }
                        }
                    }
                }
                '\\' => {
                    self.chars.next();
                    if !self.continuation() {
                        match self.chars.next() {
                            // A lone backslash at the end of the file: nothing to escape.
                            None => break,
                            Some(c) => text.push(c),
                        }
                    }
                }
                c => {
                    self.chars.next();
                    text.push(c);
                }
            }
        }
        Ok(Word { text, line })
    }

    /// The next command (non-empty list of words), or `None` at the end of the text.
    fn command(&mut self) -> Result<Option<Vec<Word>>, ParseError> {
        let mut words = Vec::new();
        loop {
            match self.chars.peek() {
                None => break,
                Some(&c) if is_blank(c) => {
                    self.chars.next();
                }
                Some('\n') => {
                    self.chars.next();
                    self.line += 1;
                    if !words.is_empty() {
                        break;
                    }
                }
                Some(';') => {
                    self.chars.next();
                    if !words.is_empty() {
                        break;
                    }
                }
                Some('#') => {
                    // Comment to the end of the line; the newline itself ends the command.
                    while self.chars.peek().is_some_and(|&c| c != '\n') {
                        self.chars.next();
                    }
                }
                Some(_) => words.push(self.word()?),
            }
        }
        Ok(if words.is_empty() { None } else { Some(words) })
    }
}

/// libuci's rule for option and section names.
fn valid_name(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// libuci's rule for section types and package names (printable ASCII, no space).
fn valid_type(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_graphic())
}

/// Quote a word for a message.
fn shown(s: &str) -> String {
    let mut out = String::from("'");
    for c in s.chars().take(40) {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    if s.chars().count() > 40 {
        out.push('…');
    }
    out.push('\'');
    out
}

/// The argument at `i`, if present and non-empty (libuci treats `''` as missing).
fn arg(words: &[Word], i: usize) -> Option<&Word> {
    words.get(i).filter(|w| !w.text.is_empty())
}

fn no_extra(words: &[Word], max: usize, usage: &str) -> Result<(), ParseError> {
    match words.get(max) {
        Some(w) => err(
            w.line,
            format!(
                "too many arguments at {} (expected `{usage}`; quote values that contain spaces)",
                shown(&w.text)
            ),
        ),
        None => Ok(()),
    }
}

/// Parse UCI text.
pub(crate) fn parse(text: &str) -> Result<Package, ParseError> {
    let mut lexer = Lexer::new(text);
    let mut pkg = Package::default();
    let mut index = HashMap::new();
    while let Some(words) = lexer.command()? {
        let Some(cmd) = words.first() else { continue };
        let line = cmd.line;
        match cmd.text.as_str() {
            "package" | "p" => {
                const USAGE: &str = "package NAME";
                let Some(name) = arg(&words, 1) else {
                    return err(line, format!("package name missing (expected `{USAGE}`)"));
                };
                if !valid_type(&name.text) {
                    return err(
                        name.line,
                        format!("invalid character in package name {}", shown(&name.text)),
                    );
                }
                no_extra(&words, 2, USAGE)?;
                if let Some((_, first)) = &pkg.name {
                    return err(
                        line,
                        format!("second 'package' command (first at line {first}); one file holds one package"),
                    );
                }
                if !pkg.sections.is_empty() {
                    return err(
                        line,
                        "'package' must come before the first 'config' section",
                    );
                }
                pkg.name = Some((name.text.clone(), line));
            }
            "config" | "c" => {
                const USAGE: &str = "config TYPE ['NAME']";
                let Some(stype) = arg(&words, 1) else {
                    return err(line, format!("section type missing (expected `{USAGE}`)"));
                };
                if !valid_type(&stype.text) {
                    return err(
                        stype.line,
                        format!("invalid character in section type {}", shown(&stype.text)),
                    );
                }
                let name = match arg(&words, 2) {
                    Some(n) if !valid_name(&n.text) => {
                        return err(
                            n.line,
                            format!(
                                "invalid section name {} (only letters, digits and _)",
                                shown(&n.text)
                            ),
                        )
                    }
                    Some(n) => Some(n.text.clone()),
                    None => None,
                };
                no_extra(&words, 3, USAGE)?;
                if let Some(last) = pkg.sections.last_mut() {
                    compact(last);
                }
                index.clear();
                pkg.sections.push(Section {
                    stype: stype.text.clone(),
                    name,
                    line,
                    options: Vec::new(),
                });
            }
            "option" | "o" | "list" | "l" => {
                let list = cmd.text.starts_with('l');
                let usage = if list {
                    "list NAME 'VALUE'"
                } else {
                    "option NAME 'VALUE'"
                };
                let Some(section) = pkg.sections.last_mut() else {
                    return err(
                        line,
                        format!(
                            "'{}' before the first section (expected `config TYPE ['NAME']` first)",
                            if list { "list" } else { "option" }
                        ),
                    );
                };
                let Some(name) = arg(&words, 1) else {
                    return err(line, format!("option name missing (expected `{usage}`)"));
                };
                if !valid_name(&name.text) {
                    return err(
                        name.line,
                        format!(
                            "invalid option name {} (only letters, digits and _)",
                            shown(&name.text)
                        ),
                    );
                }
                no_extra(&words, 3, usage)?;
                let value = words.get(2).map(|w| w.text.clone()).unwrap_or_default();
                set(section, &mut index, &name.text, value, line, list);
            }
            other => {
                return err(
                    line,
                    format!(
                        "invalid command {} (expected config, option, list or package)",
                        shown(other)
                    ),
                )
            }
        }
    }
    if let Some(last) = pkg.sections.last_mut() {
        compact(last);
    }
    Ok(pkg)
}

/// Apply `option`/`list` to a section with libuci's semantics. `index` maps option names to
/// their place in `section.options`; a deleted option stays as an empty `Single` (a tombstone,
/// removed by [`compact`]) so that places do not move.
fn set(
    section: &mut Section,
    index: &mut HashMap<String, usize>,
    name: &str,
    value: String,
    line: usize,
    list: bool,
) {
    match index.get(name).and_then(|&i| section.options.get_mut(i)) {
        Some(opt) => {
            if list {
                match &mut opt.value {
                    Value::List(items) => items.push((value, line)),
                    Value::Single(old) if old.is_empty() => {
                        opt.value = Value::List(vec![(value, line)]);
                        opt.line = line;
                    }
                    Value::Single(old) => {
                        let old = std::mem::take(old);
                        let old_line = std::mem::replace(&mut opt.line, line);
                        opt.value = Value::List(vec![(old, old_line), (value, line)]);
                    }
                }
            } else {
                // An empty value deletes the option (a tombstone).
                opt.line = line;
                opt.value = Value::Single(value);
            }
        }
        None if !list && value.is_empty() => {}
        None => {
            index.insert(name.to_string(), section.options.len());
            section.options.push(UciOption {
                name: name.to_string(),
                line,
                value: if list {
                    Value::List(vec![(value, line)])
                } else {
                    Value::Single(value)
                },
            });
        }
    }
}

/// Drop the tombstones of deleted options.
fn compact(section: &mut Section) {
    section
        .options
        .retain(|o| !matches!(&o.value, Value::Single(v) if v.is_empty()));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn single(pkg: &Package, s: usize, name: &str) -> Option<(String, usize)> {
        let o = pkg
            .sections
            .get(s)?
            .options
            .iter()
            .find(|o| o.name == name)?;
        match &o.value {
            Value::Single(v) => Some((v.clone(), o.line)),
            Value::List(_) => None,
        }
    }

    fn val(text: &str) -> String {
        let pkg = parse(&format!("config t\n\toption v {text}\n")).expect("parses");
        single(&pkg, 0, "v").map(|v| v.0).unwrap_or_default()
    }

    #[test]
    fn quoting() {
        assert_eq!(val("plain"), "plain");
        assert_eq!(val("'single quoted'"), "single quoted");
        assert_eq!(val("\"double quoted\""), "double quoted");
        assert_eq!(val(r"'it'\''s'"), "it's");
        assert_eq!(val(r#"'a'"b"c"#), "abc");
        assert_eq!(val(r#""say \"hi\"""#), "say \"hi\"");
        assert_eq!(val(r#""back\\slash""#), r"back\slash");
        assert_eq!(val(r"'no \escape'"), r"no \escape");
        assert_eq!(val(r"un\ quoted"), "un quoted");
        assert_eq!(val(r"\n"), "n");
        assert_eq!(val("'#not a comment'"), "#not a comment");
        assert_eq!(val("'a;b'"), "a;b");
    }

    #[test]
    fn comments_and_separators() {
        let pkg = parse(
            "# header\n\
             config t 'x' # trailing\n\
             \toption a 'b'# glued\n\
             \toption c d#e\n\
             \t# indented comment\n\
             \toption f g; option h i\n",
        )
        .expect("parses");
        assert_eq!(pkg.sections.len(), 1);
        assert_eq!(pkg.sections[0].name.as_deref(), Some("x"));
        assert_eq!(pkg.sections[0].line, 2);
        assert_eq!(single(&pkg, 0, "a"), Some(("b".into(), 3)));
        assert_eq!(single(&pkg, 0, "c"), Some(("d".into(), 4)));
        assert_eq!(single(&pkg, 0, "f"), Some(("g".into(), 6)));
        assert_eq!(single(&pkg, 0, "h"), Some(("i".into(), 6)));
    }

    #[test]
    fn continuation_and_multiline() {
        let pkg = parse("config t\noption a long\\\nvalue\noption b 'two\nlines'\noption c x\n")
            .expect("parses");
        assert_eq!(single(&pkg, 0, "a"), Some(("longvalue".into(), 2)));
        assert_eq!(single(&pkg, 0, "b"), Some(("two\nlines".into(), 4)));
        assert_eq!(single(&pkg, 0, "c"), Some(("x".into(), 6)));
        let pkg = parse("config t\r\noption a \"x\\\r\ny\"\r\n").expect("parses");
        assert_eq!(single(&pkg, 0, "a"), Some(("xy".into(), 2)));
    }

    #[test]
    fn abbreviations_anonymous_package() {
        let pkg = parse("package mpconv\nc t\no a b\nl c d\nl c e\nconfig u ''\n").expect("ok");
        assert_eq!(pkg.name, Some(("mpconv".into(), 1)));
        assert_eq!(pkg.sections[0].name, None);
        assert_eq!(pkg.sections[1].name, None);
        let c = &pkg.sections[0].options[1];
        assert_eq!(c.value, Value::List(vec![("d".into(), 4), ("e".into(), 5)]));
    }

    #[test]
    fn option_list_merging() {
        let pkg = parse(
            "config t\noption a 1\noption a 2\nlist a 3\noption b x\noption b ''\n\
             option c y\noption c ''\nlist c z\noption d ''\nconfig u\noption a q\n",
        )
        .expect("ok");
        let s = &pkg.sections[0];
        assert_eq!(s.options.len(), 2);
        assert_eq!(s.options[1].value, Value::List(vec![("z".into(), 9)]));
        assert_eq!(s.options[1].line, 9);
        assert_eq!(pkg.sections[1].options.len(), 1);
        assert_eq!(
            s.options[0].value,
            Value::List(vec![("2".into(), 3), ("3".into(), 4)])
        );
    }

    #[test]
    fn errors() {
        let e = |t: &str| parse(t).expect_err(t);
        assert_eq!(e("option a b\n").line, 1);
        assert!(e("option a b\n").msg.contains("before the first section"));
        assert!(e("config\n").msg.contains("section type missing"));
        assert!(e("config t 'a-b'\n")
            .msg
            .contains("invalid section name 'a-b'"));
        assert!(e("config t\noption 'a b' c\n")
            .msg
            .contains("invalid option name"));
        assert!(e("config t\noption a b c\n")
            .msg
            .contains("too many arguments at 'c'"));
        assert!(e("config t\noptoin a b\n")
            .msg
            .contains("invalid command 'optoin'"));
        let u = e("config t\noption a 'x\n\n");
        assert_eq!(u.line, 2);
        assert!(u.msg.contains("unterminated '"));
        let u = e("config t\n\noption a \"x\\\"\n");
        assert_eq!(u.line, 3);
        assert!(u.msg.contains("unterminated \""));
        assert!(e("config t\npackage x\n").msg.contains("before the first"));
        assert!(e("config t\noption\n").msg.contains("option name missing"));
    }
}
