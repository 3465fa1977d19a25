//! The arguments of `#[llmiter(…)]`: parsed into spanned [`Arg`]s, then validated
//! into a [`Config`] that reports every duplicate, conflict and bad value at its span.

use proc_macro2::Span;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, Ident, Lit, LitStr, Path, Token};

mod kw {
    syn::custom_keyword!(service);
    syn::custom_keyword!(limiter);
    syn::custom_keyword!(monitor);
    syn::custom_keyword!(max_retries);
    syn::custom_keyword!(request_id);
    syn::custom_keyword!(timeout);
    syn::custom_keyword!(priority);
    syn::custom_keyword!(tokens);
    syn::custom_keyword!(input_tokens);
    syn::custom_keyword!(output_tokens);
    syn::custom_keyword!(high);
    syn::custom_keyword!(normal);
}

const KEYS: &str = "`service`, `limiter`, `monitor`, `max_retries`, `request_id`, `timeout`, \
                    `priority`, `tokens`, `input_tokens`, `output_tokens`, `crate`";

/// Which limiter a call uses.
pub(crate) enum Source {
    /// `monitor().default_limiter()`.
    Default,
    /// `service = "name"`.
    Named(LitStr),
    /// `service = <expr>`, evaluated per call.
    NamedBy(Expr),
    /// `limiter = <expr>`.
    Limiter(Expr),
}

#[derive(Clone, Copy)]
pub(crate) enum Priority {
    High,
    Normal,
}

/// `max_retries = …`.
pub(crate) enum MaxRetries {
    /// A literal, checked at compile time (`0` runs the body once and clones nothing).
    Literal(u32),
    /// A constant or any other expression giving a `u32`.
    Expr(Expr),
}

/// `timeout = …`.
pub(crate) enum Timeout {
    /// `"30s"`: in milliseconds, with the literal's span.
    Literal(u64, Span),
    /// An expression giving a `Duration` (`Duration::from_secs(30)`, `TIMEOUT`).
    Expr(Expr),
}

/// The validated arguments.
pub(crate) struct Config {
    pub(crate) source: Source,
    /// `monitor = <expr>`: the monitor `service` names (and the default limiter) are
    /// looked up in, instead of the global one.
    pub(crate) monitor: Option<Expr>,
    pub(crate) max_retries: Option<MaxRetries>,
    pub(crate) request_id: Option<Expr>,
    pub(crate) timeout: Option<Timeout>,
    pub(crate) priority: Option<Priority>,
    pub(crate) tokens: Option<Expr>,
    pub(crate) input_tokens: Option<Expr>,
    pub(crate) output_tokens: Option<Expr>,
    pub(crate) krate: Path,
}

impl Config {
    /// Whether the acquire can fail, so the function's error type must take an
    /// `AcquireError`.
    pub(crate) fn can_fail(&self) -> bool {
        self.timeout.is_some()
            || self.tokens.is_some()
            || self.input_tokens.is_some()
            || self.output_tokens.is_some()
    }

    /// `max_retries = 0`: the body runs once.
    pub(crate) fn runs_once(&self) -> bool {
        matches!(self.max_retries, Some(MaxRetries::Literal(0)))
    }
}

/// One `key = value`, as written.
enum Arg {
    Service(Ident, Expr),
    Limiter(Ident, Expr),
    Monitor(Ident, Expr),
    MaxRetries(Ident, Expr),
    RequestId(Ident, Expr),
    Timeout(Ident, Expr),
    Priority(Ident, Priority),
    Tokens(Ident, Expr),
    InputTokens(Ident, Expr),
    OutputTokens(Ident, Expr),
    Crate(Ident, Expr),
}

impl Arg {
    fn key(&self) -> &Ident {
        match self {
            Arg::Service(k, _)
            | Arg::Limiter(k, _)
            | Arg::Monitor(k, _)
            | Arg::MaxRetries(k, _)
            | Arg::RequestId(k, _)
            | Arg::Timeout(k, _)
            | Arg::Priority(k, _)
            | Arg::Tokens(k, _)
            | Arg::InputTokens(k, _)
            | Arg::OutputTokens(k, _)
            | Arg::Crate(k, _) => k,
        }
    }
}

/// `key` as an identifier with its span (`crate` is a keyword, so not an `Ident` token).
fn key<K: Spanned>(name: &str, token: K) -> Ident {
    Ident::new(name, token.span())
}

impl Parse for Arg {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let lookahead = input.lookahead1();
        let arg = if lookahead.peek(kw::service) {
            let k = key("service", input.parse::<kw::service>()?);
            Arg::Service(k, value(input)?)
        } else if lookahead.peek(kw::limiter) {
            let k = key("limiter", input.parse::<kw::limiter>()?);
            Arg::Limiter(k, value(input)?)
        } else if lookahead.peek(kw::monitor) {
            let k = key("monitor", input.parse::<kw::monitor>()?);
            Arg::Monitor(k, value(input)?)
        } else if lookahead.peek(kw::max_retries) {
            let k = key("max_retries", input.parse::<kw::max_retries>()?);
            Arg::MaxRetries(k, value(input)?)
        } else if lookahead.peek(kw::request_id) {
            let k = key("request_id", input.parse::<kw::request_id>()?);
            Arg::RequestId(k, value(input)?)
        } else if lookahead.peek(kw::timeout) {
            let k = key("timeout", input.parse::<kw::timeout>()?);
            Arg::Timeout(k, value(input)?)
        } else if lookahead.peek(kw::priority) {
            let k = key("priority", input.parse::<kw::priority>()?);
            input.parse::<Token![=]>()?;
            let level = input.lookahead1();
            let priority = if level.peek(kw::high) {
                input.parse::<kw::high>()?;
                Priority::High
            } else if level.peek(kw::normal) {
                input.parse::<kw::normal>()?;
                Priority::Normal
            } else {
                return Err(syn::Error::new(
                    input.span(),
                    "`priority` is `high` or `normal`: `#[llmiter(priority = high)]`",
                ));
            };
            Arg::Priority(k, priority)
        } else if lookahead.peek(kw::tokens) {
            let k = key("tokens", input.parse::<kw::tokens>()?);
            Arg::Tokens(k, value(input)?)
        } else if lookahead.peek(kw::input_tokens) {
            let k = key("input_tokens", input.parse::<kw::input_tokens>()?);
            Arg::InputTokens(k, value(input)?)
        } else if lookahead.peek(kw::output_tokens) {
            let k = key("output_tokens", input.parse::<kw::output_tokens>()?);
            Arg::OutputTokens(k, value(input)?)
        } else if lookahead.peek(Token![crate]) {
            let k = key("crate", input.parse::<Token![crate]>()?);
            Arg::Crate(k, value(input)?)
        } else if input.peek(Ident) {
            let unknown: Ident = input.parse()?;
            return Err(syn::Error::new(
                unknown.span(),
                format!("unknown argument `{unknown}` for `#[llmiter]`: expected one of {KEYS}"),
            ));
        } else {
            return Err(lookahead.error());
        };
        Ok(arg)
    }
}

fn value(input: ParseStream) -> syn::Result<Expr> {
    input.parse::<Token![=]>()?;
    input.parse()
}

/// Parses and validates the attribute's arguments.
pub(crate) fn parse(args: proc_macro2::TokenStream) -> syn::Result<Config> {
    let args = syn::parse::Parser::parse2(Punctuated::<Arg, Token![,]>::parse_terminated, args)?;
    validate(args.into_iter().collect())
}

/// Collects the errors of every argument, so one build shows them all.
#[derive(Default)]
struct Errors(Option<syn::Error>);

impl Errors {
    fn push(&mut self, e: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(e),
            None => self.0 = Some(e),
        }
    }
}

fn validate(args: Vec<Arg>) -> syn::Result<Config> {
    let mut errors = Errors::default();
    let mut seen: Vec<&Ident> = Vec::new();
    for arg in &args {
        let k = arg.key();
        if seen.contains(&k) {
            errors.push(syn::Error::new(
                k.span(),
                format!("`{k}` is given twice: keep one"),
            ));
        }
        seen.push(k);
    }
    let mut config = Config {
        source: Source::Default,
        monitor: None,
        max_retries: None,
        request_id: None,
        timeout: None,
        priority: None,
        tokens: None,
        input_tokens: None,
        output_tokens: None,
        krate: syn::parse_quote!(::ratellmiter),
    };
    let mut source_key: Option<&Ident> = None;
    for arg in &args {
        let result = match arg {
            Arg::Service(k, v) | Arg::Limiter(k, v) => {
                if let Some(first) = source_key.filter(|f| *f != k) {
                    Err(syn::Error::new(
                        k.span(),
                        format!(
                            "`{first}` and `{k}` both choose the limiter: keep one \
                             (`service` names a limiter of the monitor, `limiter` gives one directly)"
                        ),
                    ))
                } else {
                    source_key = Some(k);
                    source(arg, v).map(|s| config.source = s)
                }
            }
            Arg::Monitor(_, v) => {
                config.monitor = Some(v.clone());
                Ok(())
            }
            Arg::MaxRetries(_, v) => max_retries(v).map(|n| config.max_retries = Some(n)),
            Arg::RequestId(k, v) => {
                non_string_literal(k, v, "request_id = \"req-42\"` or `request_id = id.clone()")
                    .map(|()| config.request_id = Some(v.clone()))
            }
            Arg::Timeout(_, v) => timeout(v).map(|t| config.timeout = Some(t)),
            Arg::Priority(_, p) => {
                config.priority = Some(*p);
                Ok(())
            }
            Arg::Tokens(k, v) => {
                non_string_literal(k, v, "tokens = 1_000` or `tokens = estimate(&prompt)")
                    .map(|()| config.tokens = Some(v.clone()))
            }
            Arg::InputTokens(k, v) => non_string_literal(
                k,
                v,
                "input_tokens = 2_000` or `input_tokens = estimate(&prompt)",
            )
            .map(|()| config.input_tokens = Some(v.clone())),
            Arg::OutputTokens(k, v) => non_string_literal(
                k,
                v,
                "output_tokens = 1_024` (the call's `max_tokens`) or `output_tokens = max_tokens",
            )
            .map(|()| config.output_tokens = Some(v.clone())),
            Arg::Crate(k, v) => string(k, v, "crate = \"my_facade::ratellmiter\"")
                .and_then(|s| s.parse::<Path>())
                .map(|p| config.krate = p),
        };
        if let Err(e) = result {
            errors.push(e);
        }
    }
    if let (Some(m), Source::Limiter(_)) = (
        args.iter().find(|a| matches!(a, Arg::Monitor(..))),
        &config.source,
    ) {
        errors.push(syn::Error::new(
            m.key().span(),
            "`monitor` is not used with `limiter`: the limiter is given directly; \
             keep `limiter`, or pick the monitor's limiter by name with `service = \"…\"`",
        ));
    }
    match errors.0 {
        Some(e) => Err(e),
        None => Ok(config),
    }
}

fn source(arg: &Arg, v: &Expr) -> syn::Result<Source> {
    match (arg, v) {
        (Arg::Service(..), Expr::Lit(lit)) => match &lit.lit {
            Lit::Str(s) => Ok(Source::Named(s.clone())),
            other => Err(syn::Error::new(
                other.span(),
                "`service` needs a string: the service's name (`service = \"gpt-4o\"`) or an \
                 expression giving one (`service = self.model.as_str()`)",
            )),
        },
        (Arg::Service(..), _) => Ok(Source::NamedBy(v.clone())),
        _ => Ok(Source::Limiter(v.clone())),
    }
}

/// A string literal, or an error showing `example`.
fn string(k: &Ident, v: &Expr, example: &str) -> syn::Result<LitStr> {
    match v {
        Expr::Lit(syn::ExprLit {
            lit: Lit::Str(s), ..
        }) => Ok(s.clone()),
        _ => Err(syn::Error::new(
            v.span(),
            format!("`{k}` needs a string literal: `{example}`"),
        )),
    }
}

/// Refuses a literal other than a string, which can only be a slip (`tokens = "1000"`).
fn non_string_literal(k: &Ident, v: &Expr, example: &str) -> syn::Result<()> {
    let wrong = match v {
        Expr::Lit(lit) => match (&lit.lit, k.to_string().as_str()) {
            (Lit::Str(_), "request_id")
            | (Lit::Int(_), "tokens" | "input_tokens" | "output_tokens") => None,
            (other, _) => Some(other.span()),
        },
        _ => None,
    };
    match wrong {
        Some(span) => Err(syn::Error::new(
            span,
            format!("wrong literal for `{k}`: write `{example}`"),
        )),
        None => Ok(()),
    }
}

fn max_retries(v: &Expr) -> syn::Result<MaxRetries> {
    let hint = "`max_retries` is how often a rate-limited call is re-run: a whole number \
                from 0 (never re-run) up, e.g. `max_retries = 3`, or a `u32` constant or \
                expression (`max_retries = MAX_RETRIES`)";
    match v {
        Expr::Lit(syn::ExprLit {
            lit: Lit::Int(n), ..
        }) => n
            .base10_parse::<u32>()
            .map(MaxRetries::Literal)
            .map_err(|_| syn::Error::new(n.span(), format!("{hint}; `{n}` does not fit a u32"))),
        Expr::Unary(syn::ExprUnary {
            op: syn::UnOp::Neg(_),
            expr,
            ..
        }) if matches!(
            **expr,
            Expr::Lit(syn::ExprLit {
                lit: Lit::Int(_),
                ..
            })
        ) =>
        {
            Err(syn::Error::new(
                v.span(),
                format!("{hint}; it cannot be negative"),
            ))
        }
        // Another literal (`"3"`, `3.0`) can only be a slip.
        Expr::Lit(_) => Err(syn::Error::new(v.span(), hint)),
        _ => Ok(MaxRetries::Expr(v.clone())),
    }
}

/// A duration literal (`"30s"`), checked now, or an expression giving a `Duration`.
fn timeout(v: &Expr) -> syn::Result<Timeout> {
    match v {
        Expr::Lit(syn::ExprLit {
            lit: Lit::Str(s), ..
        }) => duration_ms(s).map(|ms| Timeout::Literal(ms, s.span())),
        Expr::Lit(lit) => Err(syn::Error::new(
            lit.span(),
            "`timeout` needs a unit: a string like `timeout = \"30s\"` (ms, s, m, h) or a \
             `Duration` (`timeout = Duration::from_secs(30)`)",
        )),
        _ => Ok(Timeout::Expr(v.clone())),
    }
}

/// `"250ms"`, `"30s"`, `"2m"`, `"1h"`, or a sum of them (`"1m30s"`), in milliseconds.
pub(crate) fn duration_ms(lit: &LitStr) -> syn::Result<u64> {
    let text = lit.value();
    let bad = |why: &str| {
        syn::Error::new(
            lit.span(),
            format!(
                "bad duration \"{text}\": {why}; write a whole number and a unit (ms, s, m, h), \
                 e.g. \"30s\", \"250ms\", \"2m\" or \"1m30s\""
            ),
        )
    };
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(bad("it is empty"));
    }
    let mut total: u64 = 0;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(bad("a number must come first"));
        }
        let n: u64 = rest[..digits]
            .parse()
            .map_err(|_| bad("the number is too large"))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let factor = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "" => return Err(bad("the unit is missing")),
            other => return Err(bad(&format!("`{other}` is not a unit"))),
        };
        rest = &rest[unit_len..];
        total = n
            .checked_mul(factor)
            .and_then(|ms| total.checked_add(ms))
            .ok_or_else(|| bad("it is too long"))?;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(s: &str) -> Result<u64, String> {
        duration_ms(&LitStr::new(s, Span::call_site())).map_err(|e| e.to_string())
    }

    #[test]
    fn durations_in_every_unit_and_sums() {
        assert_eq!(ms("250ms"), Ok(250));
        assert_eq!(ms("30s"), Ok(30_000));
        assert_eq!(ms("2m"), Ok(120_000));
        assert_eq!(ms("1h"), Ok(3_600_000));
        assert_eq!(ms("1m30s"), Ok(90_000));
        assert_eq!(ms(" 5s "), Ok(5_000));
    }

    #[test]
    fn bad_durations_say_why() {
        assert!(ms("").unwrap_err().contains("empty"));
        assert!(ms("30").unwrap_err().contains("unit is missing"));
        assert!(ms("s").unwrap_err().contains("number must come first"));
        assert!(ms("3 s").unwrap_err().contains("` s` is not a unit"));
        assert!(ms("30sec").unwrap_err().contains("`sec` is not a unit"));
        assert!(
            ms("99999999999999999999s")
                .unwrap_err()
                .contains("too large")
        );
        assert!(ms("9999999999999999h").unwrap_err().contains("too long"));
    }
}
