//! Notify commands as configured (`notify_up`, `notify_down`, `quorum_up`, `quorum_down`): a
//! program and its arguments, split from a keepalived-style command line.

use std::fmt;
use std::path::PathBuf;

/// A program and its own arguments.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NotifyCommand {
    pub program: PathBuf,
    pub args: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotifyError {
    #[error("notify command is empty")]
    Empty,
    #[error("notify command `{0}` has an unterminated quote")]
    Quote(String),
}

impl NotifyCommand {
    pub fn new(program: impl Into<PathBuf>, args: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self { program: program.into(), args: args.into_iter().map(Into::into).collect() }
    }

    /// Splits a keepalived-style command line (`"/usr/bin/notify.sh web 'two words'"`) into
    /// words: blanks separate, single and double quotes group, backslash escapes.
    pub fn parse(line: &str) -> Result<Self, NotifyError> {
        let mut words = Vec::new();
        let mut word = String::new();
        let mut in_word = false;
        let mut quote: Option<char> = None;
        let mut chars = line.chars();
        while let Some(c) = chars.next() {
            match (quote, c) {
                (Some(q), c) if c == q => quote = None,
                (Some('"'), '\\') | (None, '\\') => {
                    if let Some(n) = chars.next() {
                        word.push(n);
                    }
                    in_word = true;
                }
                (Some(_), c) => word.push(c),
                (None, '"' | '\'') => {
                    quote = Some(c);
                    in_word = true;
                }
                (None, c) if c.is_whitespace() => {
                    if in_word {
                        words.push(std::mem::take(&mut word));
                        in_word = false;
                    }
                }
                (None, c) => {
                    word.push(c);
                    in_word = true;
                }
            }
        }
        if quote.is_some() {
            return Err(NotifyError::Quote(line.to_owned()));
        }
        if in_word {
            words.push(word);
        }
        let mut words = words.into_iter();
        let program = words.next().ok_or(NotifyError::Empty)?;
        Ok(Self { program: program.into(), args: words.collect() })
    }
}

impl fmt::Display for NotifyCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.program.display())?;
        for a in &self.args {
            write!(f, " {a}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_command_lines() {
        let c = NotifyCommand::parse(r#"/usr/bin/notify.sh web "two words" 'single q' a\ b"#).unwrap();
        assert_eq!(c.program, PathBuf::from("/usr/bin/notify.sh"));
        assert_eq!(c.args, ["web", "two words", "single q", "a b"]);
        assert_eq!(NotifyCommand::parse("  "), Err(NotifyError::Empty));
        assert!(matches!(NotifyCommand::parse("x 'open"), Err(NotifyError::Quote(_))));
        assert_eq!(NotifyCommand::parse(r#"x """#).unwrap().args, [""]);
    }
}
