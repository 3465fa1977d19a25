//! A [`SharedBackend`] that passes everything to a [`RedisBackend`] and keeps each
//! grant, so tests can check the shared schedule on Redis's clock.
#![allow(dead_code)] // each test binary uses part of it

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ratellmiter_runtime::shared::{
    Claim, Fallback, Grant, Report, SharedBackend, SharedError, SlotRequest,
};
use ratellmiter_runtime::{BoxFuture, RedisBackend};

/// A recording wrapper around a [`RedisBackend`].
#[derive(Debug, Clone)]
pub struct Recording {
    inner: Arc<RedisBackend>,
    grants: Arc<Mutex<Vec<Grant>>>,
    claims: Arc<Mutex<Vec<Claim>>>,
    reports: Arc<Mutex<Vec<Report>>>,
    handed: Arc<Mutex<Vec<u64>>>,
}

impl Recording {
    pub fn new(inner: RedisBackend) -> Self {
        Self {
            inner: Arc::new(inner),
            grants: Arc::default(),
            claims: Arc::default(),
            reports: Arc::default(),
            handed: Arc::default(),
        }
    }

    /// Every answer so far.
    pub fn grants(&self) -> Vec<Grant> {
        self.grants.lock().unwrap().clone()
    }

    /// Every claim's answer so far.
    pub fn claims(&self) -> Vec<Claim> {
        self.claims.lock().unwrap().clone()
    }

    /// When each ticket was handed over, µs on Redis's clock, in order: a slot due at
    /// once (claimed by its reservation) or a claim that went.
    pub fn handed(&self) -> Vec<u64> {
        self.handed.lock().unwrap().clone()
    }

    /// Every report sent so far.
    pub fn reports(&self) -> Vec<Report> {
        self.reports.lock().unwrap().clone()
    }

    /// The slots granted so far, µs since the epoch on Redis's clock.
    pub fn slots(&self) -> Vec<u64> {
        self.grants()
            .into_iter()
            .filter_map(|g| match g {
                Grant::Slot { at, .. } => Some(at.as_micros() as u64),
                _ => None,
            })
            .collect()
    }

    /// The latest slot granted, µs since the epoch on Redis's clock.
    pub fn last_slot(&self) -> Option<u64> {
        self.grants
            .lock()
            .unwrap()
            .iter()
            .rev()
            .find_map(|g| match g {
                Grant::Slot { at, .. } => Some(at.as_micros() as u64),
                _ => None,
            })
    }

    /// The longest pause answered.
    pub fn paused_for(&self) -> Duration {
        self.grants()
            .into_iter()
            .filter_map(|g| match g {
                Grant::Paused { wait, .. } => Some(wait),
                _ => None,
            })
            .max()
            .unwrap_or_default()
    }
}

impl SharedBackend for Recording {
    fn reserve(&self, request: SlotRequest) -> BoxFuture<'static, Result<Grant, SharedError>> {
        let answer = self.inner.reserve(request);
        let (grants, handed) = (self.grants.clone(), self.handed.clone());
        Box::pin(async move {
            let answer = answer.await;
            if let Ok(g) = &answer {
                grants.lock().unwrap().push(*g);
                if let Grant::Slot { wait, at, .. } = g
                    && wait.is_zero()
                {
                    handed.lock().unwrap().push(at.as_micros() as u64);
                }
            }
            answer
        })
    }

    fn claim(&self, rpm: u32) -> BoxFuture<'static, Result<Claim, SharedError>> {
        let answer = self.inner.claim(rpm);
        let (claims, handed) = (self.claims.clone(), self.handed.clone());
        Box::pin(async move {
            let answer = answer.await;
            if let Ok(claim) = &answer {
                claims.lock().unwrap().push(*claim);
                if let Claim::Went { at } = claim {
                    handed.lock().unwrap().push(at.as_micros() as u64);
                }
            }
            answer
        })
    }

    fn report(&self, report: Report) {
        self.reports.lock().unwrap().push(report.clone());
        self.inner.report(report);
    }

    fn fallback(&self) -> Fallback {
        self.inner.fallback()
    }
}

/// The most slots in any window of `window_us` (slots sorted).
pub fn max_in_window(sorted: &[u64], window_us: u64) -> usize {
    let mut start = 0;
    let mut most = 0;
    for end in 0..sorted.len() {
        while sorted[end] - sorted[start] >= window_us {
            start += 1;
        }
        most = most.max(end - start + 1);
    }
    most
}
