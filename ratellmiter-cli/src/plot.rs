//! Drawing a [`Chart`] with plotters, as PNG or SVG bytes, its text in the embedded
//! DejaVu Sans so no system font (nor fontconfig) is needed.

use std::fmt::Display;
use std::sync::OnceLock;

use anyhow::{Result, anyhow, bail};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::register_font;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::args::ImageFormat;
use crate::chart::{Chart, PAUSE_COLOUR, PROBE_COLOUR, Panel, Stroke};
use crate::lines::Rgb;

/// DejaVu Sans (Bitstream Vera license, `assets/DejaVuSans-LICENSE.txt`).
static FONT: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");

/// The family plotters asks for by default; registering the embedded font under it
/// covers every text plotters draws.
const FAMILY: &str = "sans-serif";

/// The radius of a 429 mark, in pixels.
const MARK_RADIUS: i32 = 5;

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
    let title_height = if chart.summary.is_some() { 58 } else { 36 };
    let (head, body) = root.split_vertically(title_height);
    let centre = (head.dim_in_pixel().0 / 2) as i32;
    let text =
        |size| TextStyle::from((FAMILY, size).into_font()).pos(Pos::new(HPos::Center, VPos::Top));
    drawn(head.draw_text(&chart.title, &text(22), (centre, 8)))?;
    if let Some(summary) = &chart.summary {
        drawn(head.draw_text(summary, &text(16), (centre, 36)))?;
    }
    // The first panel (the rates) gets two thirds of the height when there are two.
    let areas = match chart.panels.len() {
        2 => {
            let height = body.dim_in_pixel().1;
            let (top, bottom) = body.split_vertically(height * 2 / 3);
            vec![top, bottom]
        }
        _ => body.split_evenly((chart.panels.len().max(1), 1)),
    };
    let last = chart.panels.len().saturating_sub(1);
    for (i, (panel, area)) in chart.panels.iter().zip(&areas).enumerate() {
        draw_panel(area, chart, panel, i == 0, i == last)?;
    }
    drawn(root.present())
}

/// One panel: pauses behind, then the grid, the series in order, the probes (on the
/// `first` panel) and the legend; the x axis is named under the `last` one.
fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    chart: &Chart,
    panel: &Panel,
    first: bool,
    last: bool,
) -> Result<()> {
    let y_top = panel.y_top;
    let mut ctx = drawn(
        ChartBuilder::on(area)
            .margin_left(16)
            .margin_right(16)
            .margin_bottom(if last { 12 } else { 4 })
            .x_label_area_size(if last { 44 } else { 24 })
            .y_label_area_size(64)
            .build_cartesian_2d(0.0..chart.x_end, 0.0..y_top),
    )?;

    if !chart.pauses.is_empty() {
        let fill = colour(PAUSE_COLOUR).filled();
        let spans = chart
            .pauses
            .iter()
            .map(|&(from, to)| Rectangle::new([(from, 0.0), (to, y_top)], fill));
        let anno = drawn(ctx.draw_series(spans))?;
        if first {
            anno.label("paused")
                .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 20, y + 6)], fill));
        }
    }

    let mut mesh = ctx.configure_mesh();
    mesh.y_desc(panel.y_label)
        .label_style((FAMILY, 14))
        .light_line_style(BLACK.mix(0.04))
        .x_label_formatter(&tick)
        .y_label_formatter(&tick);
    if last {
        mesh.x_desc(chart.x_label);
    }
    drawn(mesh.draw())?;

    for series in &panel.series {
        let c = colour(series.colour);
        let points = series.points.iter().map(|&(t, v)| (t, v.min(y_top)));
        let peak = series
            .points
            .iter()
            .copied()
            .max_by(|a, b| a.1.total_cmp(&b.1));
        if let Some((t, v)) = peak.filter(|p| p.1 > y_top) {
            let style = TextStyle::from((FAMILY, 14).into_font())
                .color(&c)
                .pos(Pos::new(HPos::Left, VPos::Top));
            drawn(ctx.draw_series([Text::new(format!(" {v:.0} ↑"), (t, y_top), style)]))?;
        }
        let anno = match series.stroke {
            Stroke::Marks => {
                let style = c.filled();
                let anno =
                    drawn(ctx.draw_series(points.map(|p| Circle::new(p, MARK_RADIUS, style))))?;
                anno.label(series.label.as_str())
                    .legend(move |(x, y)| Circle::new((x + 10, y), MARK_RADIUS, style));
                continue;
            }
            Stroke::Dashed => {
                drawn(ctx.draw_series(DashedLineSeries::new(points, 10, 6, c.stroke_width(2))))?
            }
            Stroke::Solid => drawn(ctx.draw_series(LineSeries::new(points, c.stroke_width(2))))?,
            Stroke::Thin => drawn(ctx.draw_series(LineSeries::new(points, c.stroke_width(1))))?,
            Stroke::Band => drawn(ctx.draw_series(LineSeries::new(points, c.stroke_width(8))))?,
        };
        let width = match series.stroke {
            Stroke::Band => 8,
            Stroke::Thin => 1,
            _ => 2,
        };
        anno.label(series.label.as_str())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], c.stroke_width(width)));
    }

    if first && !chart.probes.is_empty() {
        let style = colour(PROBE_COLOUR).stroke_width(1);
        let lines = chart
            .probes
            .iter()
            .map(|&t| PathElement::new([(t, 0.0), (t, y_top)], style));
        drawn(ctx.draw_series(lines))?
            .label("probe")
            .legend(move |(x, y)| PathElement::new([(x + 10, y - 6), (x + 10, y + 6)], style));
    }

    drawn(
        ctx.configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .label_font((FAMILY, 14))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.4))
            .draw(),
    )
}
