//! The tape. Every op on a tensor that requires grad records one entry (its inputs and
//! a backward rule), stored with the op's output and numbered in creation order; the
//! entries reachable from the loss *are* the tape of the step. `backward()` walks them
//! once in reverse order and returns the gradients of the leaves. Entries are owned by
//! the tensors of the step, so they are freed with them: nothing outlives a step.

use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crate::{Tensor, TensorId};

/// How one op turns the gradient of its output into gradients of its inputs.
pub(crate) trait BackwardRule: Send + Sync {
    /// Gradients for each input, in order (`None` where an input needs none). Runs with
    /// recording off. `inputs` and `output` are the tensors of the forward call; `grad`
    /// is handed over, so a rule may compute an input's gradient in its buffer when
    /// nothing else holds it ([`Tensor::into_storage`]).
    fn backward(&self, inputs: &[Tensor], output: &Tensor, grad: Tensor) -> Vec<Option<Tensor>>;
}

/// One tape entry: the inputs of an op and its backward rule.
pub(crate) struct TapeEntry {
    seq: u64,
    pub(crate) inputs: Vec<Tensor>,
    rule: Box<dyn BackwardRule>,
}

static NEXT_SEQ: AtomicU64 = AtomicU64::new(0);
static LIVE_ENTRIES: AtomicUsize = AtomicUsize::new(0);

impl TapeEntry {
    pub(crate) fn new(inputs: Vec<Tensor>, rule: Box<dyn BackwardRule>) -> Self {
        LIVE_ENTRIES.fetch_add(1, Ordering::Relaxed);
        RECORDED_ON_THIS_THREAD.with(|count| count.set(count.get() + 1));
        TapeEntry { seq: NEXT_SEQ.fetch_add(1, Ordering::Relaxed), inputs, rule }
    }
}

impl Drop for TapeEntry {
    fn drop(&mut self) {
        LIVE_ENTRIES.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Number of tape entries alive in the process: a step that leaks nothing returns this
/// to where it started once its tensors are dropped. Other threads' steps count too; to
/// check what one piece of code records, use [`tape_entries_recorded_on_this_thread`].
pub fn live_tape_entries() -> usize {
    LIVE_ENTRIES.load(Ordering::Relaxed)
}

/// Number of tape entries this thread has ever recorded (never decreases): code that
/// records nothing, such as a [`no_grad`] evaluation, leaves it unchanged whatever
/// other threads do meanwhile.
pub fn tape_entries_recorded_on_this_thread() -> u64 {
    RECORDED_ON_THIS_THREAD.with(Cell::get)
}

thread_local! {
    static RECORDING: Cell<bool> = const { Cell::new(true) };
    static RECORDED_ON_THIS_THREAD: Cell<u64> = const { Cell::new(0) };
}

/// Whether ops on this thread are recorded (false inside [`no_grad`]).
pub fn is_recording() -> bool {
    RECORDING.with(Cell::get)
}

/// Runs `f` with recording off on this thread: evaluation and optimizer updates build no
/// tape. Restores the previous state afterwards, also if `f` panics.
pub fn no_grad<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            RECORDING.with(|r| r.set(self.0));
        }
    }
    let _restore = Restore(RECORDING.with(|r| r.replace(false)));
    f()
}

/// The gradients of one backward pass, keyed by the leaf tensors that require grad.
#[derive(Default)]
pub struct Gradients {
    grads: HashMap<TensorId, Tensor>,
}

impl Gradients {
    /// The gradient of `tensor` (a leaf marked `requires_grad`), if the loss depends on it.
    pub fn get(&self, tensor: &Tensor) -> Option<&Tensor> {
        self.grads.get(&tensor.id())
    }

    /// Takes the gradient of `tensor` out, leaving none.
    pub fn remove(&mut self, tensor: &Tensor) -> Option<Tensor> {
        self.grads.remove(&tensor.id())
    }

    /// Sets the gradient of `tensor` to `grad` (e.g. after averaging it across the
    /// processes of a data-parallel run); returns the gradient it replaces.
    pub fn insert(&mut self, tensor: &Tensor, grad: Tensor) -> Option<Tensor> {
        assert_eq!(
            tensor.shape(),
            grad.shape(),
            "Gradients::insert: gradient shape differs from the tensor's"
        );
        self.grads.insert(tensor.id(), grad)
    }

    /// How many leaves received a gradient.
    pub fn len(&self) -> usize {
        self.grads.len()
    }

    /// Whether no leaf received a gradient.
    pub fn is_empty(&self) -> bool {
        self.grads.is_empty()
    }
}

/// Walks the tape below `root` once in reverse, starting from `seed` as the gradient of
/// `root`; returns the gradients of the leaves that require grad.
pub(crate) fn run_backward(root: &Tensor, seed: Tensor) -> Gradients {
    no_grad(|| {
        let mut pending: HashMap<TensorId, Tensor> = HashMap::new();
        pending.insert(root.id(), seed);
        for tensor in tape_in_reverse(root) {
            let Some(grad) = pending.remove(&tensor.id()) else { continue };
            let entry = tensor.tape_entry().expect("the tape holds only recorded tensors");
            let input_grads = entry.rule.backward(&entry.inputs, &tensor, grad);
            for (input, input_grad) in entry.inputs.iter().zip(input_grads) {
                let Some(input_grad) = input_grad else { continue };
                if !input.requires_grad() {
                    continue;
                }
                let sum = match pending.remove(&input.id()) {
                    Some(previous) => &previous + &input_grad,
                    None => input_grad,
                };
                pending.insert(input.id(), sum);
            }
        }
        // Every recorded tensor was consumed above, so only leaves remain.
        Gradients { grads: pending }
    })
}

/// The recorded tensors reachable from `root`, latest entry first.
fn tape_in_reverse(root: &Tensor) -> Vec<Tensor> {
    let mut seen = HashSet::new();
    let mut stack = vec![root.clone()];
    let mut found = Vec::new();
    while let Some(tensor) = stack.pop() {
        if !seen.insert(tensor.id()) {
            continue;
        }
        if let Some(entry) = tensor.tape_entry() {
            stack.extend(entry.inputs.iter().filter(|t| t.requires_grad()).cloned());
            found.push((entry.seq, tensor.clone()));
        }
    }
    found.sort_by_key(|(seq, _)| std::cmp::Reverse(*seq));
    found.into_iter().map(|(_, tensor)| tensor).collect()
}
