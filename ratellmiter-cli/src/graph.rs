//! The graph command: picks what to draw from the log, draws it, writes the image
//! beside the log (or to `--out`) and prints its path.

use std::path::Path;

use anyhow::{Context, Result, bail};
use ratellmiter_runtime::flow_log::format::sanitize_service_name;

use crate::args::{GraphArgs, ImageFormat};
use crate::chart::{Chart, compare_chart, service_chart};
use crate::console::Console;
use crate::logs::{self, LoadedLog, known_services};
use crate::{open, plot};

/// Draws the graph `args` asks for.
pub fn run(args: &GraphArgs, console: &mut Console<'_>) -> Result<()> {
    let format = image_format(args.format, args.out.as_deref())?;
    let loaded = logs::load(&args.log, console)?;
    let (chart, name) = if args.compare {
        compare(&loaded)?
    } else {
        one_service(&loaded, args)?
    };
    let out = args.out.clone().unwrap_or_else(|| {
        loaded
            .path
            .with_file_name(format!("{name}.{}", format.extension()))
    });
    let image = plot::render(&chart, format, (args.width, args.height))?;
    std::fs::write(&out, image).with_context(|| format!("cannot write {}", out.display()))?;
    writeln!(console.out, "{}", out.display())?;
    if args.open {
        open::open(&out, console);
    }
    Ok(())
}

/// The chart of `--name`'s lines, and the image's default name,
/// `<log stem>_<service>_<lines>`.
fn one_service(loaded: &LoadedLog, args: &GraphArgs) -> Result<(Chart, String)> {
    let LoadedLog { path, log } = loaded;
    let service = args.name.as_str();
    if !log.service_names().contains(&service) {
        bail!(
            "unknown service {service:?} in {}; {} (choose one with --name)",
            path.display(),
            known_services(log)
        );
    }
    if log.seconds_for(service).next().is_none() {
        bail!(
            "service {service:?} has no activity to draw in {}",
            path.display()
        );
    }
    let chart = service_chart(log, service, &args.lines);
    let name = format!(
        "{}_{}_{}",
        logs::stem(path),
        sanitize_service_name(service),
        args.lines
    );
    Ok((chart, name))
}

/// The compare chart, and the image's default name, `<log stem>_compare`.
fn compare(loaded: &LoadedLog) -> Result<(Chart, String)> {
    if loaded.log.seconds.is_empty() {
        bail!("no activity to draw in {}", loaded.path.display());
    }
    let chart = compare_chart(&loaded.log);
    Ok((chart, format!("{}_compare", logs::stem(&loaded.path))))
}

/// `--format`, else what `--out`'s extension says, else PNG.
fn image_format(format: Option<ImageFormat>, out: Option<&Path>) -> Result<ImageFormat> {
    let Some(out) = out else {
        return Ok(format.unwrap_or(ImageFormat::Png));
    };
    let ext = out
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let from_out = match ext.as_deref() {
        Some("png") => Some(ImageFormat::Png),
        Some("svg") => Some(ImageFormat::Svg),
        _ => None,
    };
    match (format, from_out) {
        (Some(f), Some(o)) if f != o => bail!(
            "--format {} but --out {} ends in .{}",
            f.extension(),
            out.display(),
            o.extension()
        ),
        (Some(f), _) | (None, Some(f)) => Ok(f),
        (None, None) => bail!(
            "cannot tell the image format of --out {}: end it in .png or .svg, or give --format",
            out.display()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_format_follows_the_flag_then_the_extension() {
        let f = |format, out: Option<&str>| image_format(format, out.map(Path::new));
        assert_eq!(f(None, None).unwrap(), ImageFormat::Png);
        assert_eq!(f(Some(ImageFormat::Svg), None).unwrap(), ImageFormat::Svg);
        assert_eq!(f(None, Some("a.SVG")).unwrap(), ImageFormat::Svg);
        assert_eq!(
            f(Some(ImageFormat::Svg), Some("graph")).unwrap(),
            ImageFormat::Svg
        );
        assert!(f(Some(ImageFormat::Png), Some("a.svg")).is_err());
        assert!(f(None, Some("a.jpg")).is_err());
    }
}
