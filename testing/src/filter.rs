//! The ListOperations `filter`: the part of AIP-160 that applies to
//! operations.
//!
//! Grammar (AIP-160 precedence: `OR` binds tighter than `AND`; `NOT` and
//! `-` negate one term):
//!
//! ```text
//! filter      = [ expression ]
//! expression  = sequence { "AND" sequence }
//! sequence    = factor { "OR" factor }          (adjacent terms are ANDed)
//! factor      = [ "NOT" | "-" ] term
//! term        = "(" expression ")" | "done" [ ( "=" | "!=" ) bool ]
//! bool        = "true" | "false" | "\"true\"" | "\"false\""
//! ```
//!
//! A bare `done` means `done = true`. Anything else (another field, another
//! comparator, an unbalanced parenthesis) is rejected with a message saying
//! what was not understood.

/// A parsed filter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Filter {
    /// Every operation (an empty filter).
    All,
    /// `done` equals the value.
    Done(bool),
    Not(Box<Filter>),
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
}

impl Filter {
    /// Parses `text`.
    ///
    /// # Errors
    ///
    /// A message naming the token that is not understood.
    pub(crate) fn parse(text: &str) -> Result<Filter, String> {
        let tokens = tokenize(text)?;
        if tokens.is_empty() {
            return Ok(Filter::All);
        }
        let mut parser = Parser { tokens, at: 0 };
        let filter = parser.expression()?;
        match parser.peek() {
            None => Ok(filter),
            Some(token) => Err(format!("unexpected {token:?}")),
        }
    }

    /// Whether an operation whose `done` is `done` matches.
    pub(crate) fn matches(&self, done: bool) -> bool {
        match self {
            Filter::All => true,
            Filter::Done(value) => done == *value,
            Filter::Not(inner) => !inner.matches(done),
            Filter::And(a, b) => a.matches(done) && b.matches(done),
            Filter::Or(a, b) => a.matches(done) || b.matches(done),
        }
    }
}

/// Words, quoted strings, and the punctuation `( ) = != -`.
fn tokenize(text: &str) -> Result<Vec<String>, String> {
    let mut tokens = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '(' | ')' | '=' | '-' => {
                chars.next();
                tokens.push(c.to_string());
            }
            '!' => {
                chars.next();
                if chars.next_if_eq(&'=').is_none() {
                    return Err("unexpected \"!\" (did you mean \"!=\" or \"NOT\"?)".into());
                }
                tokens.push("!=".into());
            }
            '"' => {
                chars.next();
                let word: String = chars.by_ref().take_while(|&c| c != '"').collect();
                tokens.push(format!("\"{word}\""));
            }
            _ => {
                let mut word = String::new();
                while let Some(c) = chars.next_if(|c| c.is_alphanumeric() || "_.:<>*".contains(*c))
                {
                    word.push(c);
                }
                if word.is_empty() {
                    return Err(format!("unexpected {c:?}"));
                }
                tokens.push(word);
            }
        }
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<String>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<&str> {
        self.tokens.get(self.at).map(String::as_str)
    }

    fn next(&mut self) -> Option<String> {
        let token = self.tokens.get(self.at).cloned();
        self.at += 1;
        token
    }

    fn expression(&mut self) -> Result<Filter, String> {
        let mut filter = self.sequence()?;
        while let Some(token) = self.peek() {
            if token == ")" {
                break;
            }
            if token == "AND" {
                self.at += 1;
            }
            filter = Filter::And(Box::new(filter), Box::new(self.sequence()?));
        }
        Ok(filter)
    }

    fn sequence(&mut self) -> Result<Filter, String> {
        let mut filter = self.factor()?;
        while self.peek() == Some("OR") {
            self.at += 1;
            filter = Filter::Or(Box::new(filter), Box::new(self.factor()?));
        }
        Ok(filter)
    }

    fn factor(&mut self) -> Result<Filter, String> {
        if matches!(self.peek(), Some("NOT" | "-")) {
            self.at += 1;
            return Ok(Filter::Not(Box::new(self.term()?)));
        }
        self.term()
    }

    fn term(&mut self) -> Result<Filter, String> {
        match self.next().as_deref() {
            Some("(") => {
                let inner = self.expression()?;
                match self.next().as_deref() {
                    Some(")") => Ok(inner),
                    _ => Err("missing \")\"".into()),
                }
            }
            Some("done") => {
                let negate = match self.peek() {
                    Some("=") => false,
                    Some("!=") => true,
                    _ => return Ok(Filter::Done(true)),
                };
                self.at += 1;
                let value = match self.next().as_deref() {
                    Some("true" | "\"true\"") => true,
                    Some("false" | "\"false\"") => false,
                    Some(other) => return Err(format!("done compares with true or false, not {other:?}")),
                    None => return Err("done = needs a value (true or false)".into()),
                };
                Ok(Filter::Done(value != negate))
            }
            Some(other) => Err(format!(
                "unsupported field or token {other:?} (operations filter on done: done=true, done=false, NOT done)"
            )),
            None => Err("unexpected end of filter".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Filter;

    fn done_and_running(filter: &str) -> (bool, bool) {
        let filter = Filter::parse(filter).unwrap_or_else(|e| panic!("{filter:?}: {e}"));
        (filter.matches(true), filter.matches(false))
    }

    #[test]
    fn the_forms_clients_send() {
        for (filter, expected) in [
            ("", (true, true)),
            ("   ", (true, true)),
            ("done=true", (true, false)),
            ("done = true", (true, false)),
            ("done=false", (false, true)),
            ("done = \"false\"", (false, true)),
            ("done != true", (false, true)),
            ("done", (true, false)),
            ("NOT done", (false, true)),
            ("-done", (false, true)),
            ("NOT done=false", (true, false)),
            ("done=true OR done=false", (true, true)),
            ("done=true AND done=false", (false, false)),
            ("done=true done=false", (false, false)),
            ("(done=true OR NOT done) AND done", (true, false)),
        ] {
            assert_eq!(done_and_running(filter), expected, "{filter:?}");
        }
    }

    #[test]
    fn what_it_cannot_parse_is_an_error() {
        for filter in [
            "name=foo",
            "done=maybe",
            "done=",
            "done >= true",
            "(done",
            "done)",
            "done ! true",
            "AND",
            "metadata.progressPercent > 50",
            "done=true AND",
        ] {
            assert!(Filter::parse(filter).is_err(), "{filter:?} parsed");
        }
    }
}
