//! The letters of `--lines`: which per-second count each draws, and in which colour.
//!
//! | letter | line | colour |
//! | --- | --- | --- |
//! | `i` | tickets issued | green `#2CA02C` (as in rateLLMiter's README) |
//! | `r` | ticket requests | orange `#FF7F0E` (as in rateLLMiter's README) |
//! | `o` | overflow: calls waiting for a ticket, in the queue panel with those in flight | purple `#9467BD` |
//! | `e` | rate-limit exceptions, as marks | red `#D62728` |
//! | `f` | calls finished | blue `#1F77B4` |

use std::fmt;
use std::str::FromStr;

use ratellmiter_runtime::flow_log::format::SecondRecord;

/// An opaque colour, red, green and blue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rgb(pub u8, pub u8, pub u8);

impl Rgb {
    /// `#RRGGBB`, as an SVG writes it.
    pub fn hex(self) -> String {
        format!("#{:02X}{:02X}{:02X}", self.0, self.1, self.2)
    }
}

/// One line of a service's graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Line {
    /// Tickets issued per second, re-issues included (`i`).
    Issued,
    /// New ticket requests per second (`r`).
    Requests,
    /// Calls waiting for a ticket at the end of each second (`o`).
    Overflow,
    /// Rate-limit errors per second (`e`).
    Exceptions,
    /// Calls finished per second (`f`).
    Finished,
}

impl Line {
    /// Every line, in rateLLMiter's default order (`iroef`).
    pub const ALL: [Line; 5] = [
        Self::Issued,
        Self::Requests,
        Self::Overflow,
        Self::Exceptions,
        Self::Finished,
    ];

    /// The letter that chooses this line.
    pub fn letter(self) -> char {
        match self {
            Self::Issued => 'i',
            Self::Requests => 'r',
            Self::Overflow => 'o',
            Self::Exceptions => 'e',
            Self::Finished => 'f',
        }
    }

    /// The legend's name.
    pub fn label(self) -> &'static str {
        match self {
            Self::Issued => "issued",
            Self::Requests => "requests",
            Self::Overflow => "overflow (waiting)",
            Self::Exceptions => "rate-limit exceptions",
            Self::Finished => "finished",
        }
    }

    /// The line's colour; the five are distinct from each other and from the
    /// reference lines of [`crate::chart`].
    pub fn colour(self) -> Rgb {
        match self {
            Self::Issued => Rgb(0x2C, 0xA0, 0x2C),
            Self::Requests => Rgb(0xFF, 0x7F, 0x0E),
            Self::Overflow => Rgb(0x94, 0x67, 0xBD),
            Self::Exceptions => Rgb(0xD6, 0x27, 0x28),
            Self::Finished => Rgb(0x1F, 0x77, 0xB4),
        }
    }

    /// The line's value in `second`.
    pub fn value(self, second: &SecondRecord) -> u64 {
        match self {
            Self::Issued => second.issued,
            Self::Requests => second.requested,
            Self::Overflow => second.waiting,
            Self::Exceptions => second.rate_limited,
            Self::Finished => second.finished,
        }
    }

    fn from_letter(letter: char) -> Option<Self> {
        Self::ALL.into_iter().find(|l| l.letter() == letter)
    }
}

/// The lines chosen with `--lines`, each once, in the order given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lines(Vec<Line>);

impl Lines {
    /// The chosen lines.
    pub fn iter(&self) -> impl Iterator<Item = Line> + '_ {
        self.0.iter().copied()
    }
}

impl FromStr for Lines {
    type Err = String;

    fn from_str(letters: &str) -> Result<Self, Self::Err> {
        let valid = || {
            let all: Vec<String> = Line::ALL
                .iter()
                .map(|l| format!("{} ({})", l.letter(), l.label()))
                .collect();
            format!("valid letters: {}", all.join(", "))
        };
        let mut lines = Vec::new();
        for c in letters.chars() {
            let line = Line::from_letter(c)
                .ok_or_else(|| format!("unknown line letter {c:?}; {}", valid()))?;
            if !lines.contains(&line) {
                lines.push(line);
            }
        }
        if lines.is_empty() {
            return Err(format!("no line chosen; {}", valid()));
        }
        Ok(Self(lines))
    }
}

impl fmt::Display for Lines {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.iter().try_for_each(|l| write!(f, "{}", l.letter()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letters_choose_lines_once_in_order() {
        let lines: Lines = "fiif".parse().unwrap();
        assert_eq!(
            lines.iter().collect::<Vec<_>>(),
            [Line::Finished, Line::Issued]
        );
        assert_eq!(lines.to_string(), "fi");
    }

    #[test]
    fn unknown_letters_list_the_valid_ones() {
        let err = "riX".parse::<Lines>().unwrap_err();
        assert!(err.contains("'X'"), "{err}");
        for l in Line::ALL {
            assert!(
                err.contains(&format!("{} ({})", l.letter(), l.label())),
                "{err}"
            );
        }
        assert!("".parse::<Lines>().unwrap_err().contains("no line chosen"));
    }

    #[test]
    fn colours_are_distinct() {
        for (i, a) in Line::ALL.iter().enumerate() {
            for b in &Line::ALL[i + 1..] {
                assert_ne!(a.colour(), b.colour(), "{a:?} and {b:?}");
            }
        }
    }
}
