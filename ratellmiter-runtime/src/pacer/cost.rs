//! What a call is charged: its estimate before it runs ([`Cost`]) and what it really
//! used once answered ([`Usage`]), by kind of token.
//!
//! A provider counts tokens in up to three budgets: all tokens together (OpenAI's
//! TPM), input tokens (Anthropic's and Gemini's ITPM) and output tokens (Anthropic's
//! OTPM, charged up front from `max_tokens` and corrected after the answer). A call that
//! gives only a total charges it to the total budget and, having no split, to the input
//! budget (input dominates most calls, and charging it there errs on the safe side).

/// A call's estimated tokens, by kind: what the limiter charges when its ticket goes out.
///
/// `tokens` is a total (`#[llmiter(tokens = …)]`); `input` and `output` are the split
/// (`#[llmiter(input_tokens = …, output_tokens = …)]`, the output being the call's
/// `max_tokens` reservation). Built by [`Call`](crate::Call); drivers pass it on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Cost {
    /// A total estimate (0: the sum of `input` and `output`).
    pub tokens: u64,
    /// Estimated input (prompt) tokens.
    pub input: u64,
    /// Output tokens reserved (the call's `max_tokens`).
    pub output: u64,
}

impl Cost {
    /// No tokens at all.
    pub const ZERO: Cost = Cost {
        tokens: 0,
        input: 0,
        output: 0,
    };

    /// A total of `n` tokens, not split by kind.
    pub const fn tokens(n: u64) -> Cost {
        Cost {
            tokens: n,
            input: 0,
            output: 0,
        }
    }

    /// What the total-tokens budget (`tpm`, `tpd`) is charged.
    pub fn total(&self) -> u64 {
        if self.tokens > 0 {
            self.tokens
        } else {
            self.input.saturating_add(self.output)
        }
    }

    /// What the input budget (`input_tpm`) is charged: the input estimate, or the
    /// total when the call gave no split.
    pub fn input_charge(&self) -> u64 {
        if self.input > 0 || self.output > 0 {
            self.input
        } else {
            self.tokens
        }
    }

    /// What the output budget (`output_tpm`) is charged: the reservation.
    pub fn output_charge(&self) -> u64 {
        self.output
    }

    /// Every figure clamped to `max` (a wild report must not overflow the windows).
    pub(crate) fn clamp(self, max: u64) -> Cost {
        Cost {
            tokens: self.tokens.min(max),
            input: self.input.min(max),
            output: self.output.min(max),
        }
    }
}

/// The tokens a call really used, as the provider's `usage` reported them: given to
/// [`current().record_usage(…)`](crate::Current::record_usage), which refunds or charges
/// each budget the difference from the estimate.
///
/// A plain `u64` is a total (`record_usage(420)`); [`Usage::new`] gives the split.
/// `input` counts every input token, cache reads included (OpenAI's `prompt_tokens`);
/// [`cached_input`](Self::cached_input) says how many of them were read from the
/// provider's prompt cache, which the input budget does not count (Anthropic's cache
/// reads do not count towards ITPM) while the total budget does.
///
/// ```
/// use ratellmiter::Usage;
/// let used = Usage::new(2_000, 300).cached_input(1_500);
/// assert_eq!(used.input(), 2_000);
/// assert_eq!(used.output(), 300);
/// assert_eq!(used.cached(), 1_500);
/// assert_eq!(used.total(), 2_300);
/// assert_eq!(Usage::from(420).total(), 420);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Usage {
    total: Option<u64>,
    input: u64,
    output: u64,
    cached: u64,
}

impl Usage {
    /// `input` prompt tokens and `output` completion tokens.
    pub fn new(input: u64, output: u64) -> Self {
        Self {
            total: None,
            input,
            output,
            cached: 0,
        }
    }

    /// `n` of the input tokens were read from the prompt cache (at most all of them).
    pub fn cached_input(mut self, n: u64) -> Self {
        self.cached = n;
        self
    }

    /// Input tokens, cache reads included.
    pub fn input(&self) -> u64 {
        self.input
    }

    /// Output tokens.
    pub fn output(&self) -> u64 {
        self.output
    }

    /// Input tokens read from the prompt cache.
    pub fn cached(&self) -> u64 {
        self.cached.min(self.input)
    }

    /// All tokens: the total given, or input plus output.
    pub fn total(&self) -> u64 {
        self.total
            .unwrap_or_else(|| self.input.saturating_add(self.output))
    }

    /// The charges this usage stands for, in the estimate's terms.
    pub(crate) fn as_cost(&self) -> Cost {
        match self.total {
            Some(n) => Cost::tokens(n),
            None => Cost {
                tokens: self.total(),
                // The input budget counts no cache reads; an input of zero with an
                // output is still a split (not "no split").
                input: self.input - self.cached(),
                output: self.output,
            },
        }
    }
}

impl From<u64> for Usage {
    /// A total, not split by kind.
    fn from(total: u64) -> Self {
        Self {
            total: Some(total),
            ..Self::default()
        }
    }
}
