//! A [`SharedBackend`] that passes everything to a [`RedisBackend`] and keeps each
//! grant, so tests can check the shared schedule on Redis's clock.
#![allow(dead_code)] // each test binary uses part of it

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ratellmiter_runtime::shared::{
    Fallback, Grant, Report, SharedBackend, SharedError, SlotRequest,
};
use ratellmiter_runtime::{BoxFuture, RedisBackend};

/// A recording wrapper around a [`RedisBackend`].
#[derive(Debug, Clone)]
pub struct Recording {
    inner: Arc<RedisBackend>,
    grants: Arc<Mutex<Vec<Grant>>>,
    claims: Arc<Mutex<Vec<Option<Duration>>>>,
    reports: Arc<Mutex<Vec<Report>>>,
}

impl Recording {
    pub fn new(inner: RedisBackend) -> Self {
        Self {
            inner: Arc::new(inner),
            grants: Arc::default(),
            claims: Arc::default(),
            reports: Arc::default(),
        }
    }

    /// Every answer so far.
    pub fn grants(&self) -> Vec<Grant> {
        self.grants.lock().unwrap().clone()
    }

    /// Every claim's answer so far (`None`: the ticket went).
    pub fn claims(&self) -> Vec<Option<Duration>> {
        self.claims.lock().unwrap().clone()
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
        let grants = self.grants.clone();
        Box::pin(async move {
            let answer = answer.await;
            if let Ok(g) = &answer {
                grants.lock().unwrap().push(*g);
            }
            answer
        })
    }

    fn claim(&self, rpm: u32) -> BoxFuture<'static, Result<Option<Duration>, SharedError>> {
        let answer = self.inner.claim(rpm);
        let claims = self.claims.clone();
        Box::pin(async move {
            let answer = answer.await;
            if let Ok(wait) = &answer {
                claims.lock().unwrap().push(*wait);
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
