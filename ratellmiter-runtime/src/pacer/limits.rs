//! Limits changed at run time: set by the driver, or learned from the provider's
//! headers.

use std::time::Duration;

use super::{Learned, Pacer};
#[cfg(doc)]
use crate::config::LimiterConfig;
use crate::config::{ConfigError, validate_rpm, validate_tpm};

impl Pacer {
    /// Configures the budgets the provider's `*-limit-*` headers named, once: the first
    /// answer that names any (with [`LimiterConfig::learn_limits`]); later ones change
    /// nothing. A limit the engine cannot take is ignored.
    pub fn learn_limits(&mut self, now: Duration, learned: Learned) {
        if !self.cfg.learn_limits || self.learned || learned == Learned::default() {
            return;
        }
        self.learned = true;
        if let Some(rpm) = learned.rpm {
            let rpm = u32::try_from(rpm).unwrap_or(u32::MAX);
            let _ = self.set_rpm(now, rpm.min(crate::config::MAX_RPM));
        }
        for (field, value) in [
            ("tpm", learned.tpm),
            ("input_tpm", learned.input_tpm),
            ("output_tpm", learned.output_tpm),
            ("rpd", learned.rpd),
        ] {
            if let Some(v) = value {
                let _ = self
                    .budgets
                    .set_limit(field, v, &mut self.cfg, self.wall_origin);
            }
        }
        self.rebased = self.last_now;
    }

    /// Changes the requests-per-minute limit from the next ticket on. A higher limit is
    /// reached through the ramp; a lower one takes effect at once.
    pub fn set_rpm(&mut self, now: Duration, rpm: u32) -> Result<(), ConfigError> {
        validate_rpm(rpm)?;
        let now = self.advance(now);
        self.rebased = now;
        self.cfg.rpm = rpm;
        self.schedule.set_rpm(rpm);
        self.ramp.set_full_rate(now, rpm as f64 / 60.0);
        if let Some(last) = self.last_issue {
            self.schedule.respace(last, self.interval());
        }
        Ok(())
    }

    /// Changes (or sets) the tokens-per-minute budget from the next ticket on.
    pub fn set_tpm(&mut self, now: Duration, tpm: u64) -> Result<(), ConfigError> {
        validate_tpm(tpm)?;
        self.advance(now);
        self.cfg.tpm = Some(tpm);
        self.budgets.set_tpm(tpm);
        Ok(())
    }
}
