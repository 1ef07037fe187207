//! The comparison drawn as one SVG picture per scenario: for each strategy, the requests a second
//! it sent, got accepted and got refused over time, and the users it had updated against the
//! lower bound's pace.
//!
//! One panel per strategy, every panel on the same axes, so that a glance down a column compares
//! strategies: the time axis is shared (cut at two and a half times the bound or gcbulk's
//! makespan, whichever is longer, so that a strategy stopped at the 24-hour horizon does not
//! squash the rest; its title says how long it ran), and so is the rate axis (cut at four times
//! the pace the bound implies once the server's first window or burst is spent; a panel that
//! goes higher says so). Rates are counted in bins of a fixed width, named in the title.
//!
//! The lower bound is drawn as a line: what the server admits at once at time zero, then a
//! steady pace to the bound. Under a fixed window the real best is a staircase that touches that
//! line at each window's start; the line keeps the picture simple.
//!
//! Text is laid out by estimate (no font files are read), so every label is kept short and well
//! inside its panel.

use std::fmt::Write as _;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::compare::{Comparison, StrategyResult};
use crate::model::ClientLimit;
use crate::scenario::Scenario;

/// What a strategy's clients sent and were answered, over one run; each in seconds of virtual
/// time, all clients together.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Timeline {
    /// When each request was sent.
    pub sent: Vec<f64>,
    /// When each success (a 2xx) was answered.
    pub accepted: Vec<f64>,
    /// When each 429 was answered.
    pub throttled: Vec<f64>,
    /// When each user was confirmed updated.
    pub updated: Vec<f64>,
}

impl Timeline {
    /// Notes an answer with `status` at `at`.
    pub fn answered(&mut self, at: f64, status: u16) {
        match status {
            200..=299 => self.accepted.push(at),
            429 => self.throttled.push(at),
            _ => {}
        }
    }

    /// Adds another client's events.
    pub fn extend(&mut self, other: Self) {
        self.sent.extend(other.sent);
        self.accepted.extend(other.accepted);
        self.throttled.extend(other.throttled);
        self.updated.extend(other.updated);
    }

    /// Puts every list in time order.
    pub fn sort(&mut self) {
        for list in [
            &mut self.sent,
            &mut self.accepted,
            &mut self.throttled,
            &mut self.updated,
        ] {
            list.sort_by(f64::total_cmp);
        }
    }
}

/// The picture could not be drawn.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PlotError(String);

impl<E: std::error::Error + Send + Sync> From<DrawingAreaErrorKind<E>> for PlotError {
    fn from(error: DrawingAreaErrorKind<E>) -> Self {
        Self(error.to_string())
    }
}

/// Panels across.
const COLUMNS: usize = 3;
/// One panel's size, in pixels.
const PANEL_WIDTH: u32 = 540;
const PANEL_HEIGHT: u32 = 390;
/// The title's height.
const HEADER_HEIGHT: u32 = 78;
/// Points along a panel's users line.
const SAMPLES: usize = 900;
/// Bins across the time axis, about.
const BINS: f64 = 150.0;
/// Bin widths to choose from, in seconds.
const BIN_WIDTHS: [f64; 14] = [
    1.0, 2.0, 5.0, 10.0, 15.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0,
];

const SENT: RGBColor = RGBColor(110, 110, 110);
const ACCEPTED: RGBColor = RGBColor(0, 140, 70);
const THROTTLED: RGBColor = RGBColor(215, 35, 35);
const UPDATED: RGBColor = RGBColor(30, 90, 200);
const BOUND: RGBColor = RGBColor(0, 0, 0);
const STORM: RGBColor = RGBColor(255, 232, 170);
const GRID: RGBColor = RGBColor(228, 228, 228);
const FAINT: RGBColor = RGBColor(90, 90, 90);
const FONT: &str = "sans-serif";

/// The axes every panel shares.
#[derive(Clone, Debug)]
struct Axes {
    /// The time axis ends here, in seconds.
    x_max: f64,
    /// Rates are counted in bins this wide, in seconds.
    bin: f64,
    /// The rate axis ends here, in requests a second.
    rate_max: f64,
    /// The users axis ends here.
    users_max: f64,
    /// The lower bound, in seconds.
    bound: f64,
    /// Users the server admits at once, at time zero.
    start: f64,
    /// Users the server admits by the bound (all changed users, unless a daily limit caps it).
    reachable: f64,
    /// Requests a second the bound implies, when it is not zero.
    pace: Option<f64>,
    /// The scenario's 429 storms, as start and end in seconds.
    storms: Vec<(f64, f64)>,
}

/// Draws `comparison` (whose rows match `timelines` one for one) as an SVG document.
pub fn svg(
    scenario: &Scenario,
    comparison: &Comparison,
    timelines: &[Timeline],
) -> Result<String, PlotError> {
    let rows = &comparison.strategies;
    if rows.len() != timelines.len() {
        return Err(PlotError(format!(
            "{} strategies but {} timelines",
            rows.len(),
            timelines.len()
        )));
    }
    let axes = axes(scenario, comparison, timelines);
    let cells = rows.len() + 1;
    let grid_rows = cells.div_ceil(COLUMNS);
    let size = (
        PANEL_WIDTH * COLUMNS as u32,
        HEADER_HEIGHT + PANEL_HEIGHT * grid_rows as u32,
    );

    let mut text = String::new();
    {
        let root = SVGBackend::with_string(&mut text, size).into_drawing_area();
        root.fill(&WHITE)?;
        let (header, body) = root.split_vertically(HEADER_HEIGHT);
        draw_header(&header, scenario, comparison, &axes)?;
        let panels = body.split_evenly((grid_rows, COLUMNS));
        for ((row, timeline), panel) in rows.iter().zip(timelines).zip(&panels) {
            draw_panel(panel, row, timeline, &axes)?;
        }
        if let Some(panel) = panels.get(rows.len()) {
            draw_legend(panel, &axes)?;
        }
        root.present()?;
    }
    Ok(text)
}

fn axes(scenario: &Scenario, comparison: &Comparison, timelines: &[Timeline]) -> Axes {
    let bound = comparison.lower_bound_s;
    let longest = comparison
        .strategies
        .iter()
        .map(|row| row.makespan_s)
        .fold(0.0, f64::max);
    let gcbulk = comparison.gcbulk().map_or(0.0, |row| row.makespan_s);
    let reference = bound.max(gcbulk).max(1.0);
    let x_max = round_up(longest.min(2.5 * reference).max(1.0));
    let bin = BIN_WIDTHS
        .into_iter()
        .find(|width| *width >= x_max / BINS)
        .unwrap_or(3600.0);

    let needed = scenario.requests_needed() as f64;
    let error_share = scenario.server.faults.server_error_probability.min(0.99);
    let mut admitted = needed / (1.0 - error_share);
    if let Some(daily) = scenario.server.rate_limit.daily_limit
        && let Some(after) = daily.after_requests
    {
        admitted = admitted.min(after as f64);
    }
    let changed = scenario.org.changed as f64;
    let users_per_request = (1.0 - error_share) * changed / needed.max(1.0);
    let reachable = (admitted * users_per_request).min(changed);
    // What the server admits at once (a window's limit, a GCRA's burst); the rest comes at the
    // bound's pace, which is the slope of the bound's line and what the rate axis is scaled to.
    let at_once = match scenario.server.rate_limit.per_client {
        ClientLimit::FixedWindow { limit, .. } | ClientLimit::Gcra { limit, .. } => {
            f64::from(limit).min(admitted)
        }
        ClientLimit::Unlimited => admitted,
    };
    let pace = (bound > 0.0).then(|| (admitted - at_once) / bound);

    let peak = |timeline: &Timeline| {
        rates(&timeline.sent, bin, x_max)
            .into_iter()
            .fold(0.0, f64::max)
    };
    let highest = timelines.iter().map(peak).fold(0.0, f64::max);
    let gcbulk_peak = comparison
        .strategies
        .iter()
        .zip(timelines)
        .find(|(row, _)| row.name == "gcbulk")
        .map_or(0.0, |(_, timeline)| peak(timeline));
    // A burst at the start (a GCRA's) or a sprint at the end would flatten everything else: the
    // axis stops at four times the pace, and a panel that goes higher says so.
    let cap = match pace {
        Some(pace) if pace > 0.0 => 4.0 * pace,
        _ => 1.25 * gcbulk_peak,
    };
    let rate_max = round_up(if cap > 0.0 { highest.min(cap) } else { highest }.max(1.0));

    Axes {
        x_max,
        bin,
        rate_max,
        users_max: round_up(changed.max(1.0)),
        bound,
        start: (at_once * users_per_request).min(reachable),
        reachable,
        pace,
        storms: scenario
            .server
            .rate_limit
            .storms
            .iter()
            .map(|storm| (storm.start_secs, storm.end_secs))
            .collect(),
    }
}

fn draw_header<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    scenario: &Scenario,
    comparison: &Comparison,
    axes: &Axes,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let title = format!(
        "Scenario {} (seed {}): every strategy on the same work",
        comparison.scenario, comparison.seed
    );
    area.draw(&Text::new(
        title,
        (16, 10),
        (FONT, 30).into_font().style(FontStyle::Bold).color(&BLACK),
    ))?;
    let mut line = String::new();
    if !scenario.description.is_empty() {
        let _ = write!(line, "{}. ", capitalised(&scenario.description));
    }
    let _ = write!(
        line,
        "Lower bound {:.0} s. Rates counted per {:.0} s.",
        axes.bound, axes.bin
    );
    area.draw(&Text::new(
        line,
        (16, 46),
        (FONT, 20).into_font().color(&FAINT),
    ))?;
    Ok(())
}

fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    row: &StrategyResult,
    timeline: &Timeline,
    axes: &Axes,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let area = area.margin(8, 10, 10, 16);
    let (head, rest) = area.split_vertically(46);
    let name_style = (FONT, 21).into_font().style(FontStyle::Bold).color(&BLACK);
    head.draw(&Text::new(row.name.clone(), (4, 2), name_style))?;
    let beyond = if row.makespan_s > axes.x_max {
        ", past the axis"
    } else {
        ""
    };
    let stats = format!(
        "{:.0} s{beyond} ({:.3} of bound), {} 429s, {} failed",
        row.makespan_s, row.ratio, row.throttled, row.failed_items
    );
    head.draw(&Text::new(
        stats,
        (4, 24),
        (FONT, 17).into_font().color(&FAINT),
    ))?;

    let (top, bottom) = rest.split_vertically(155);
    let sent = rates(&timeline.sent, axes.bin, axes.x_max);
    let accepted = rates(&timeline.accepted, axes.bin, axes.x_max);
    let throttled = rates(&timeline.throttled, axes.bin, axes.x_max);
    let peak = sent.iter().copied().fold(0.0, f64::max);

    let mut chart = ChartBuilder::on(&top)
        .x_label_area_size(4)
        .y_label_area_size(52)
        .build_cartesian_2d(0.0..axes.x_max, 0.0..axes.rate_max)?;
    chart
        .configure_mesh()
        .x_labels(6)
        .y_labels(4)
        .x_label_formatter(&|_| String::new())
        .y_label_formatter(&|v| short_number(*v))
        .y_desc("req/s")
        .max_light_lines(0)
        .bold_line_style(GRID)
        .axis_desc_style((FONT, 17))
        .label_style((FONT, 16))
        .draw()?;
    for &(start, end) in &axes.storms {
        let end = end.min(axes.x_max);
        if start < end {
            chart.draw_series([Rectangle::new(
                [(start, 0.0), (end, axes.rate_max)],
                STORM.filled(),
            )])?;
        }
    }
    if let Some(pace) = axes.pace.filter(|pace| *pace <= axes.rate_max) {
        chart.draw_series(DashedLineSeries::new(
            [(0.0, pace), (axes.x_max, pace)],
            4,
            4,
            BLACK.mix(0.6).stroke_width(1),
        ))?;
    }
    let clip = |values: &[f64]| steps(values, axes.bin, axes.rate_max);
    chart.draw_series(LineSeries::new(clip(&sent), SENT.stroke_width(1)))?;
    chart.draw_series(LineSeries::new(clip(&accepted), ACCEPTED.stroke_width(1)))?;
    // Only where something was refused, so that a run without 429s shows no red at all.
    for run in nonzero_runs(&clip(&throttled)) {
        chart.draw_series(AreaSeries::new(
            run.iter().copied(),
            0.0,
            THROTTLED.mix(0.45),
        ))?;
        chart.draw_series(LineSeries::new(run, THROTTLED.stroke_width(1)))?;
    }
    if peak > axes.rate_max {
        let (width, _) = top.dim_in_pixel();
        let left = width as i32 - 198;
        top.draw(&Rectangle::new(
            [(left, 1), (width as i32 - 2, 23)],
            WHITE.mix(0.85).filled(),
        ))?;
        top.draw(&Text::new(
            format!("peaks at {} req/s, cut", short_number(peak)),
            (left + 6, 4),
            (FONT, 16).into_font().color(&THROTTLED),
        ))?;
    }

    let mut chart = ChartBuilder::on(&bottom)
        .margin_top(16)
        .x_label_area_size(40)
        .y_label_area_size(52)
        .build_cartesian_2d(0.0..axes.x_max, 0.0..axes.users_max)?;
    chart
        .configure_mesh()
        .x_labels(6)
        .y_labels(4)
        .x_label_formatter(&|v| short_number(*v))
        .y_label_formatter(&|v| short_number(*v))
        .x_desc("time (s)")
        .y_desc("users")
        .max_light_lines(0)
        .bold_line_style(GRID)
        .axis_desc_style((FONT, 17))
        .label_style((FONT, 16))
        .draw()?;
    let mut bound = vec![(0.0, 0.0), (0.0, axes.start), (axes.bound, axes.reachable)];
    if axes.bound < axes.x_max {
        bound.push((axes.x_max, axes.reachable));
    }
    chart.draw_series(DashedLineSeries::new(bound, 6, 4, BOUND.stroke_width(1)))?;
    chart.draw_series(LineSeries::new(
        cumulative(&timeline.updated, axes.x_max, SAMPLES),
        UPDATED.stroke_width(2),
    ))?;
    Ok(())
}

fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    axes: &Axes,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let area = area.margin(16, 10, 10, 24);
    let heading = (FONT, 22).into_font().style(FontStyle::Bold).color(&BLACK);
    area.draw(&Text::new("How to read a panel", (0, 0), heading))?;
    let label = (FONT, 19).into_font().color(&BLACK);
    let mut entries: Vec<(&str, ShapeStyle, bool)> = vec![
        ("requests sent, a second", SENT.stroke_width(2), false),
        (
            "answered 2xx (accepted), a second",
            ACCEPTED.stroke_width(2),
            false,
        ),
        (
            "answered 429 (throttled), a second",
            THROTTLED.filled(),
            false,
        ),
        (
            "the pace of the lower bound",
            BLACK.mix(0.6).stroke_width(1),
            true,
        ),
        ("users updated, in all", UPDATED.stroke_width(3), false),
        (
            "lower bound: most users by then",
            BOUND.stroke_width(1),
            true,
        ),
    ];
    if !axes.storms.is_empty() {
        entries.push(("a 429 storm", STORM.filled(), false));
    }
    let count = entries.len() as i32;
    for (index, (text, style, dashed)) in entries.into_iter().enumerate() {
        let y = 36 + 26 * index as i32;
        if style.filled {
            area.draw(&Rectangle::new([(0, y - 5), (34, y + 5)], style))?;
        } else if dashed {
            for start in (0..34).step_by(8) {
                area.draw(&PathElement::new(vec![(start, y), (start + 5, y)], style))?;
            }
        } else {
            area.draw(&PathElement::new(vec![(0, y), (34, y)], style))?;
        }
        area.draw(&Text::new(text, (46, y - 8), label.clone()))?;
    }
    let notes = [
        format!(
            "Top: rates, per {:.0} s bin, cut at {} req/s.",
            axes.bin,
            short_number(axes.rate_max)
        ),
        "Bottom: users updated over time.".to_owned(),
        format!(
            "Time axis cut at {} s: a longer run",
            short_number(axes.x_max)
        ),
        "says so in its title.".to_owned(),
        "Every panel has the same axes.".to_owned(),
    ];
    let note = (FONT, 17).into_font().color(&FAINT);
    for (index, text) in notes.into_iter().enumerate() {
        let y = 36 + 26 * count + 8 + 20 * index as i32;
        area.draw(&Text::new(text, (0, y), note.clone()))?;
    }
    Ok(())
}

/// Events a second in bins of `bin` seconds from zero to `end`.
fn rates(times: &[f64], bin: f64, end: f64) -> Vec<f64> {
    let bins = (end / bin).ceil().max(1.0) as usize;
    let mut counts = vec![0.0; bins];
    for &at in times {
        if (0.0..end).contains(&at) {
            let index = ((at / bin) as usize).min(bins - 1);
            counts[index] += 1.0;
        }
    }
    counts.iter().map(|count| count / bin).collect()
}

/// Per-bin rates as a step line, each value held across its bin and kept below `cap`.
fn steps(rates: &[f64], bin: f64, cap: f64) -> Vec<(f64, f64)> {
    let mut points = Vec::with_capacity(2 * rates.len());
    for (index, rate) in rates.iter().enumerate() {
        let start = index as f64 * bin;
        let rate = rate.min(cap);
        points.push((start, rate));
        points.push((start + bin, rate));
    }
    points
}

/// The stretches of a step line above zero, each closed down to zero at both ends.
fn nonzero_runs(points: &[(f64, f64)]) -> Vec<Vec<(f64, f64)>> {
    let mut runs = Vec::new();
    let mut current: Vec<(f64, f64)> = Vec::new();
    for pair in points.chunks(2) {
        let &[(start, rate), (end, _)] = pair else {
            continue;
        };
        if rate > 0.0 {
            if current.is_empty() {
                current.push((start, 0.0));
            }
            current.extend([(start, rate), (end, rate)]);
        } else if let Some(&(last, _)) = current.last() {
            current.push((last, 0.0));
            runs.push(std::mem::take(&mut current));
        }
    }
    if let Some(&(last, _)) = current.last() {
        current.push((last, 0.0));
        runs.push(current);
    }
    runs
}

/// How many of the sorted `times` had passed, at `samples` even steps from zero to `end`: finer
/// than a panel's pixels, and far fewer points than one per user.
fn cumulative(times: &[f64], end: f64, samples: usize) -> Vec<(f64, f64)> {
    let samples = samples.max(1);
    (0..=samples)
        .map(|step| {
            let at = end * step as f64 / samples as f64;
            (at, times.partition_point(|time| *time <= at) as f64)
        })
        .collect()
}

/// `value` rounded up to one, two or five times a power of ten, or a multiple of the power just
/// below it: 1980 becomes 2000, 2183 becomes 2500, 86400 becomes 90000.
fn round_up(value: f64) -> f64 {
    if value <= 0.0 || !value.is_finite() {
        return 1.0;
    }
    let power = 10f64.powf(value.log10().floor());
    let step = if value / power > 5.0 {
        power
    } else {
        power / 2.0
    };
    (value / step).ceil() * step
}

/// `12`, `2.5`, `1,500` → `1.5k`: labels short enough for a narrow axis.
fn short_number(value: f64) -> String {
    let magnitude = value.abs();
    if magnitude >= 1000.0 {
        let thousands = value / 1000.0;
        if (thousands - thousands.round()).abs() < 1e-9 {
            format!("{thousands:.0}k")
        } else {
            format!("{thousands:.1}k")
        }
    } else if (value - value.round()).abs() < 1e-9 {
        format!("{value:.0}")
    } else {
        format!("{value:.1}")
    }
}

fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::baseline::Strategy;
    use crate::compare::run_recorded;

    #[test]
    fn rates_count_per_second_in_their_bin() {
        let rates = rates(&[0.0, 1.0, 9.9, 10.0, 25.0, 40.0], 10.0, 30.0);
        assert_eq!(rates, vec![0.3, 0.1, 0.1]);
    }

    #[test]
    fn steps_hold_each_rate_across_its_bin_and_stay_under_the_cap() {
        let points = steps(&[1.0, 9.0], 10.0, 5.0);
        assert_eq!(
            points,
            vec![(0.0, 1.0), (10.0, 1.0), (10.0, 5.0), (20.0, 5.0)]
        );
    }

    #[test]
    fn refusals_are_drawn_only_where_there_were_some() {
        let points = steps(&[0.0, 2.0, 3.0, 0.0, 1.0], 1.0, 10.0);
        let runs = nonzero_runs(&points);
        assert_eq!(runs.len(), 2);
        assert_eq!(
            runs[0],
            vec![
                (1.0, 0.0),
                (1.0, 2.0),
                (2.0, 2.0),
                (2.0, 3.0),
                (3.0, 3.0),
                (3.0, 0.0)
            ]
        );
        assert_eq!(
            runs[1],
            vec![(4.0, 0.0), (4.0, 1.0), (5.0, 1.0), (5.0, 0.0)]
        );
        assert!(nonzero_runs(&steps(&[0.0, 0.0], 1.0, 10.0)).is_empty());
    }

    #[test]
    fn the_cumulative_line_counts_what_had_passed_and_stops_at_the_axis() {
        let points = cumulative(&[1.0, 2.0, 2.5, 50.0], 10.0, 5);
        assert_eq!(
            points,
            vec![
                (0.0, 0.0),
                (2.0, 2.0),
                (4.0, 3.0),
                (6.0, 3.0),
                (8.0, 3.0),
                (10.0, 3.0)
            ]
        );
    }

    #[test]
    fn round_numbers_for_the_axes() {
        assert_eq!(round_up(1980.0), 2000.0);
        assert_eq!(round_up(2183.0), 2500.0);
        assert_eq!(round_up(86_400.0), 90_000.0);
        assert_eq!(round_up(4.2), 4.5);
        assert_eq!(round_up(0.0), 1.0);
        assert_eq!(short_number(1500.0), "1.5k");
        assert_eq!(short_number(2000.0), "2k");
        assert_eq!(short_number(2.5), "2.5");
    }

    #[test]
    fn a_small_comparison_draws_a_panel_per_strategy_and_a_legend() {
        let mut scenario = crate::scenario::steady();
        scenario.org.users = 120;
        scenario.org.changed = 120;
        scenario.server.rate_limit.per_client = ClientLimit::FixedWindow {
            limit: 30,
            window_secs: 10,
        };
        let strategies = [Strategy::ALL[0], Strategy::ALL[1]];
        let (comparison, timelines) = run_recorded(&scenario, 3, &strategies, true).unwrap();
        assert_eq!(timelines[0].updated.len(), 120);
        assert!(timelines[0].sent.len() >= 122, "reads, patches and a token");

        let svg = svg(&scenario, &comparison, &timelines).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..80]);
        assert!(svg.contains("Scenario steady (seed 3)"));
        for row in &comparison.strategies {
            assert!(
                svg.contains(&format!("\n{}\n</text>", row.name)),
                "{}",
                row.name
            );
        }
        assert!(svg.contains("How to read a panel"));
        assert!(svg.contains("time (s)") && svg.contains("req/s"));
    }
}
