//! `Summary`: the Keras `model.summary()` of a Kiln model, one row a layer (activations
//! and dropout folded into the layer they follow) with output shape and parameters.

use std::fmt;

use kiln_tensor::Shape;

/// One row of a summary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SummaryRow {
    /// The layer, e.g. `conv 5×5 pad 2, 256` or `dense 4096 + dropout 0.5`.
    pub layer: String,
    /// Output shape of one example.
    pub output: Shape,
    /// Parameters of the layer (and of what is folded into it).
    pub params: usize,
}

/// A model summary for a given input shape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    /// The input shape of one example.
    pub input: Shape,
    /// One row a layer.
    pub rows: Vec<SummaryRow>,
}

impl Summary {
    /// A summary of `rows` for `input`.
    pub fn new(input: Shape, rows: Vec<SummaryRow>) -> Self {
        Summary { input, rows }
    }

    /// Total parameters.
    pub fn total_params(&self) -> usize {
        self.rows.iter().map(|r| r.params).sum()
    }
}

/// `96×54×54` style.
pub fn format_dims(shape: &Shape) -> String {
    shape.dims().iter().map(usize::to_string).collect::<Vec<_>>().join("×")
}

/// `46,764,746` style.
pub fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cells: Vec<[String; 3]> = self
            .rows
            .iter()
            .map(|r| [r.layer.clone(), format_dims(&r.output), thousands(r.params)])
            .collect();
        let header = ["layer".to_string(), "output".to_string(), "params".to_string()];
        let total = ["total".to_string(), String::new(), thousands(self.total_params())];
        let width =
            |c: usize| cells.iter().chain([&header, &total]).map(|r| r[c].chars().count()).max().unwrap_or(0);
        let (w0, w1, w2) = (width(0), width(1), width(2));
        let line = |f: &mut fmt::Formatter<'_>, r: &[String; 3]| {
            writeln!(f, "  {:<w0$}  {:<w1$}  {:>w2$}", r[0], r[1], r[2])
        };
        writeln!(f, "  input {}", format_dims(&self.input))?;
        line(f, &header)?;
        writeln!(f, "  {}", "─".repeat(w0 + w1 + w2 + 4))?;
        for row in &cells {
            line(f, row)?;
        }
        writeln!(f, "  {}", "─".repeat(w0 + w1 + w2 + 4))?;
        line(f, &total)
    }
}
