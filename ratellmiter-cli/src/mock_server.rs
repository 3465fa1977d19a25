//! `llmiter mock-server`: the mock provider standalone, for pointing any
//! OpenAI-compatible client at (`OPENAI_BASE_URL=http://127.0.0.1:PORT/v1`).

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use ratellmiter_sim::{AccelerationLimit, Latency, PenaltyBox, Provider, ProviderConfig};

use crate::args::MockServerArgs;
use crate::console::Console;

impl MockServerArgs {
    /// The provider these options describe.
    pub fn provider(&self) -> anyhow::Result<Provider> {
        let config = ProviderConfig {
            rpm: self.rpm,
            tpm: self.tpm,
            outage_retry_after: self.outage_retry_after,
            acceleration: self
                .acceleration
                .then(|| AccelerationLimit::for_rpm(self.rpm)),
            penalty: self.penalty.then(PenaltyBox::default),
            latency: Latency::LogNormal {
                median: Duration::from_millis(self.latency_ms),
                sigma: 0.5,
            },
            seed: self.seed,
            rpd: self.rpd,
            max_concurrent: self.max_concurrent,
            error_style: self.error_style.into(),
            ..Default::default()
        };
        let config = self
            .outage
            .iter()
            .cloned()
            .fold(config, ProviderConfig::with_outage);
        Ok(Provider::new(config)?)
    }
}

/// Serves until ctrl-c, then prints what the server saw as JSON.
pub fn run(args: &MockServerArgs, console: &mut Console<'_>) -> anyhow::Result<()> {
    let provider = args.provider()?;
    let addr = SocketAddr::from(([127, 0, 0, 1], args.port));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let metrics = rt.block_on(async {
        let server = ratellmiter_sim::spawn(provider, addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        writeln!(
            console.out,
            "mock provider at {} (OPENAI_BASE_URL); ctrl-c stops it",
            server.base_url()
        )?;
        console.out.flush()?;
        tokio::signal::ctrl_c().await?;
        let metrics = server.metrics();
        server.shutdown().await?;
        anyhow::Ok(metrics)
    })?;
    writeln!(console.out, "{}", serde_json::to_string_pretty(&metrics)?)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::args::{Cli, Command};

    fn args(argv: &[&str]) -> Result<MockServerArgs, clap::Error> {
        let cli = Cli::try_parse_from(["llmiter", "mock-server"].iter().chain(argv))?;
        match cli.command {
            Some(Command::MockServer(a)) => Ok(a),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn options_become_the_provider_s_limits() {
        let a = args(&[
            "--rpm",
            "300",
            "--tpm",
            "90000",
            "--outage",
            "10..40",
            "--outage",
            "+5s..+35",
            "--acceleration",
            "--port",
            "0",
        ])
        .unwrap();
        let provider = a.provider().unwrap();
        let config = provider.config("any-model");
        assert_eq!((config.rpm, config.tpm), (300, Some(90_000)));
        assert_eq!(
            config.outages,
            [Duration::from_secs(10)..Duration::from_secs(40)]
        );
        assert_eq!(
            config.outages_after_first_request,
            [Duration::from_secs(5)..Duration::from_secs(35)]
        );
        assert_eq!(config.acceleration, Some(AccelerationLimit::for_rpm(300)));
        assert!(config.penalty.is_none());
    }

    #[test]
    fn a_tpm_of_600_serves_requests_of_17_tokens() {
        // 10 tokens a second, and a hello of 17: never "too large", one per second.
        let mut provider = args(&["--tpm", "600"]).unwrap().provider().unwrap();
        let t = Duration::from_secs;
        assert!(provider.request(t(0), "gpt-4o", 17).is_accept());
        assert!(provider.request(t(1), "gpt-4o", 17).is_accept());
    }

    #[test]
    fn a_backwards_outage_and_a_zero_rate_are_named() {
        let err = args(&["--outage", "40..10"]).unwrap_err().to_string();
        assert!(err.contains("--outage") && err.contains("40..10"), "{err}");
        let err = args(&["--outage", "+5..35"]).unwrap_err().to_string();
        assert!(err.contains("both ends with `+`"), "{err}");
        let err = args(&["--rpm", "0"]).unwrap().provider().unwrap_err();
        assert!(err.to_string().contains("`rpm`"), "{err}");
    }
}
