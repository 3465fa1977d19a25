//! Drawing a [`Chart`] with plotters, as PNG or SVG bytes, its text in the embedded
//! DejaVu Sans so no system font (nor fontconfig) is needed.

use std::fmt::Display;
use std::sync::OnceLock;

use anyhow::{Result, anyhow, bail};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::register_font;

use crate::args::ImageFormat;
use crate::chart::{Chart, PAUSE_COLOUR, Stroke};
use crate::lines::Rgb;

/// DejaVu Sans (Bitstream Vera license, `assets/DejaVuSans-LICENSE.txt`).
static FONT: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");

/// The family plotters asks for by default; registering the embedded font under it
/// covers every text plotters draws.
const FAMILY: &str = "sans-serif";

/// Makes the embedded font the one plotters draws with, once per process.
fn use_embedded_font() -> Result<()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| register_font(FAMILY, FontStyle::Normal, FONT).is_ok());
    if !ok {
        bail!("the embedded font cannot be read");
    }
    Ok(())
}

/// `chart` drawn as a `width` × `height` image in `format`.
pub(crate) fn render(
    chart: &Chart,
    format: ImageFormat,
    (width, height): (u32, u32),
) -> Result<Vec<u8>> {
    use_embedded_font()?;
    match format {
        ImageFormat::Png => {
            let mut rgb = vec![0u8; width as usize * height as usize * 3];
            draw(
                BitMapBackend::with_buffer(&mut rgb, (width, height)).into_drawing_area(),
                chart,
            )?;
            encode_png(&rgb, width, height)
        }
        ImageFormat::Svg => {
            let mut svg = String::new();
            draw(
                SVGBackend::with_string(&mut svg, (width, height)).into_drawing_area(),
                chart,
            )?;
            Ok(svg.into_bytes())
        }
    }
}

fn encode_png(rgb: &[u8], width: u32, height: u32) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, width, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(rgb)?;
    writer.finish()?;
    Ok(out)
}

fn colour(c: Rgb) -> RGBColor {
    RGBColor(c.0, c.1, c.2)
}

/// Plotters' errors carry the backend's error type; only their text is wanted here.
fn drawn<T, E: Display>(result: Result<T, E>) -> Result<T> {
    result.map_err(|e| anyhow!("drawing failed: {e}"))
}

/// Axis labels: whole numbers without a fraction, others with one decimal.
fn tick(v: &f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

fn draw<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, chart: &Chart) -> Result<()> {
    drawn(root.fill(&WHITE))?;
    // Headroom above the highest point for the legend; an empty chart still gets an axis.
    let y_top = (chart.y_max() * 1.15).clamp(1.0, f64::MAX);
    let mut ctx = drawn(
        ChartBuilder::on(&root)
            .caption(&chart.title, (FAMILY, 22))
            .margin(16)
            .x_label_area_size(44)
            .y_label_area_size(56)
            .build_cartesian_2d(0.0..chart.x_end, 0.0..y_top),
    )?;

    // Pauses first, so the grid and the lines are drawn over them.
    if !chart.pauses.is_empty() {
        let fill = colour(PAUSE_COLOUR).filled();
        let spans = chart
            .pauses
            .iter()
            .map(|&(from, to)| Rectangle::new([(from, 0.0), (to, y_top)], fill));
        drawn(ctx.draw_series(spans))?
            .label("paused")
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 20, y + 6)], fill));
    }

    drawn(
        ctx.configure_mesh()
            .x_desc(chart.x_label)
            .y_desc(chart.y_label)
            .label_style((FAMILY, 14))
            .light_line_style(BLACK.mix(0.04))
            .x_label_formatter(&tick)
            .y_label_formatter(&tick)
            .draw(),
    )?;

    for series in &chart.series {
        let (width, dashed) = match series.stroke {
            Stroke::Solid => (2, false),
            Stroke::Thin => (1, false),
            Stroke::Dashed => (2, true),
        };
        let style = colour(series.colour).stroke_width(width);
        let points = series.points.iter().copied();
        let anno = if dashed {
            drawn(ctx.draw_series(DashedLineSeries::new(points, 10, 6, style)))?
        } else {
            drawn(ctx.draw_series(LineSeries::new(points, style)))?
        };
        anno.label(series.label.as_str())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], style));
    }

    drawn(
        ctx.configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .label_font((FAMILY, 14))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.4))
            .draw(),
    )?;
    drawn(root.present())
}
