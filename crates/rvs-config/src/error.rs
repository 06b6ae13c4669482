//! Configuration errors that say where: file, line, column, field, and the offending line.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// A configuration error with its place in the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    pub file: PathBuf,
    /// 1-based; 0 when the error concerns the whole file.
    pub line: usize,
    pub column: usize,
    /// The field at fault, as a dotted path (`service[1].real_server[0].weight`), when known.
    pub field: Option<String>,
    pub message: String,
    /// The text of the line at fault.
    pub source_line: Option<String>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.column)?;
        }
        write!(f, ": ")?;
        if let Some(field) = &self.field {
            write!(f, "{field}: ")?;
        }
        write!(f, "{}", self.message)?;
        if let Some(l) = &self.source_line {
            write!(f, "\n    | {l}")?;
        }
        Ok(())
    }
}

/// An error found while validating, before it is placed in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unplaced {
    pub span: Option<Range<usize>>,
    pub field: String,
    pub message: String,
}

impl Unplaced {
    pub fn new(span: Option<Range<usize>>, field: impl Into<String>, message: impl fmt::Display) -> Self {
        Self { span, field: field.into(), message: message.to_string() }
    }

    pub fn located(self, path: &Path, text: &str) -> ConfigError {
        let (line, column, source_line) = position(text, self.span);
        ConfigError {
            file: path.to_path_buf(),
            line,
            column,
            field: Some(self.field),
            message: self.message,
            source_line,
        }
    }
}

fn position(text: &str, span: Option<Range<usize>>) -> (usize, usize, Option<String>) {
    let Some(span) = span else { return (0, 0, None) };
    let at = span.start.min(text.len());
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = text[line_start..at].chars().count() + 1;
    let source_line = text[line_start..].lines().next().map(|l| l.to_string());
    (line, column, source_line)
}

impl ConfigError {
    pub(crate) fn io(path: &Path, e: std::io::Error) -> Self {
        Self {
            file: path.to_path_buf(),
            line: 0,
            column: 0,
            field: None,
            message: format!("cannot read: {e}"),
            source_line: None,
        }
    }

    pub(crate) fn toml(path: &Path, text: &str, e: &toml::de::Error) -> Self {
        let (line, column, source_line) = position(text, e.span());
        // The full path of the field (`service[0].check.interval`) where the file is TOML; the
        // key of the line where it is not.
        let field = e.span().and_then(|s| crate::path::field_at(text, s.start)).or_else(|| {
            source_line
                .as_deref()
                .and_then(|l| l.split_once('='))
                .map(|(k, _)| k.trim().to_string())
                .filter(|k| !k.is_empty() && !k.starts_with('['))
        });
        // toml has no words for some errors (a control character in a comment).
        let message = match e.message().trim() {
            "" => "invalid TOML".to_string(),
            m => m.to_string(),
        };
        Self { file: path.to_path_buf(), line, column, field, message, source_line }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::Config;

    #[test]
    fn every_error_says_something() {
        // Found by the config_file fuzz target: toml's message for this one is empty.
        let e = Config::parse("# validate\x0c\x10t+\0\0\0\0api]\n", Path::new("x.toml")).unwrap_err();
        assert_eq!((e.line, e.message.as_str()), (1, "invalid TOML"));
        assert!(e.to_string().starts_with("x.toml:1:"), "{e}");
    }
}
