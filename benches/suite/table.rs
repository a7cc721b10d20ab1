//! Samples and the result table: one row per figure, with its budget, median, min–max and command.

use std::fmt::Write as _;
use std::time::Duration;

/// Measurements of one figure, in the unit it is printed in.
#[derive(Debug, Clone, Default)]
pub struct Samples {
    values: Vec<f64>,
}

impl Samples {
    pub fn push(&mut self, value: f64) {
        self.values.push(value);
    }

    pub fn push_ms(&mut self, duration: Duration) {
        self.push(duration.as_secs_f64() * 1000.0);
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    fn sorted(&self) -> Vec<f64> {
        let mut sorted = self.values.clone();
        sorted.sort_by(f64::total_cmp);
        sorted
    }

    /// The `q` quantile (nearest rank); `0.5` is the median.
    pub fn quantile(&self, q: f64) -> f64 {
        let sorted = self.sorted();
        assert!(!sorted.is_empty(), "no samples");
        sorted[((sorted.len() - 1) as f64 * q).round() as usize]
    }

    pub fn median(&self) -> f64 {
        self.quantile(0.5)
    }

    pub fn min(&self) -> f64 {
        self.quantile(0.0)
    }

    pub fn max(&self) -> f64 {
        self.quantile(1.0)
    }
}

/// A budget: the figure must be at most (or at least) this much.
#[derive(Debug, Clone, Copy)]
pub enum Budget {
    AtMost(f64),
    AtLeast(f64),
    /// Reported only.
    None,
}

impl Budget {
    fn met(self, value: f64) -> Option<bool> {
        match self {
            Budget::AtMost(limit) => Some(value <= limit),
            Budget::AtLeast(limit) => Some(value >= limit),
            Budget::None => None,
        }
    }

    fn text(self, unit: &str) -> String {
        match self {
            Budget::AtMost(limit) => format!("≤ {} {unit}", number(limit)),
            Budget::AtLeast(limit) => format!("≥ {} {unit}", number(limit)),
            Budget::None => "—".to_owned(),
        }
        .trim_end()
        .to_owned()
    }
}

pub struct Row {
    pub figure: String,
    pub unit: &'static str,
    pub budget: Budget,
    pub samples: Samples,
    /// What `n` counts, e.g. "runs" or "rotations".
    pub of: String,
    pub command: String,
}

#[derive(Default)]
pub struct Table {
    rows: Vec<Row>,
    notes: Vec<String>,
}

impl Table {
    pub fn add(&mut self, row: Row) {
        let met = match row.budget.met(row.samples.median()) {
            Some(true) => "met",
            Some(false) => "MISSED",
            None => "",
        };
        println!(
            "  {}: median {} {} ({}–{}, n={}) {} {met}",
            row.figure,
            number(row.samples.median()),
            row.unit,
            number(row.samples.min()),
            number(row.samples.max()),
            row.samples.len(),
            row.budget.text(row.unit),
        );
        self.rows.push(row);
    }

    pub fn note(&mut self, note: String) {
        println!("  note: {note}");
        self.notes.push(note);
    }

    pub fn missed(&self) -> Vec<&str> {
        self.rows
            .iter()
            .filter(|row| row.budget.met(row.samples.median()) == Some(false))
            .map(|row| row.figure.as_str())
            .collect()
    }

    /// The table as Markdown, headed by the machine it ran on.
    pub fn markdown(&self, machine: &str) -> String {
        let mut out = format!("{machine}\n\n");
        out.push_str("| figure | budget | median | min–max | n | met | command |\n");
        out.push_str("|---|---|---|---|---|---|---|\n");
        for row in &self.rows {
            let met = match row.budget.met(row.samples.median()) {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "",
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} {} | {}–{} | {} {} | {met} | `{}` |",
                row.figure,
                row.budget.text(row.unit),
                number(row.samples.median()),
                row.unit,
                number(row.samples.min()),
                number(row.samples.max()),
                row.samples.len(),
                row.of,
                row.command,
            );
        }
        for note in &self.notes {
            let _ = writeln!(out, "\n- {note}");
        }
        out
    }
}

/// Three significant digits, without exponent, grouped for readability above 10 000.
pub fn number(value: f64) -> String {
    if value == 0.0 {
        return "0".to_owned();
    }
    let magnitude = value.abs().log10().floor() as i32;
    let decimals = (2 - magnitude).clamp(0, 3) as usize;
    let text = format!("{value:.decimals$}");
    if value.abs() < 10_000.0 {
        return text;
    }
    let digits: Vec<char> = text.chars().collect();
    let mut grouped = String::new();
    for (i, c) in digits.iter().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(' ');
        }
        grouped.push(*c);
    }
    grouped
}
