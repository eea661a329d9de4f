//! Operators the recipe language checks before Starlark runs them. `*` repeating a string, list
//! or tuple builds its whole result in one step, before the heap limit or the tick count can
//! stop it (`"x" * 1000000000` ran for minutes and took a gigabyte), so every `*` of a recipe
//! is compiled as a call to [`MUL`], which checks the result's size first.

use starlark::environment::GlobalsBuilder;
use starlark::eval::Evaluator;
use starlark::starlark_module;
use starlark::values::Value;
use starlark::values::list::ListRef;
use starlark::values::tuple::TupleRef;

/// The global `*` is compiled to.
pub(crate) const MUL: &str = "__opsworks_mul";

/// The most bytes (strings) or items (lists, tuples) one repetition may make: far more than any
/// configuration file needs, far less than a heap limit.
pub(crate) const MAX_REPEAT: usize = 16 << 20;

/// The length a repetition of `v` multiplies, and what it counts, if `v` is repeatable.
fn repeatable(v: Value<'_>) -> Option<(usize, &'static str)> {
    if let Some(s) = v.unpack_str() {
        return Some((s.len(), "bytes"));
    }
    if let Some(l) = ListRef::from_value(v) {
        return Some((l.len(), "items"));
    }
    TupleRef::from_value(v).map(|t| (t.len(), "items"))
}

#[starlark_module]
pub(crate) fn checked_ops(builder: &mut GlobalsBuilder) {
    /// `a * b`, with a repetition's size checked before it is built.
    fn __opsworks_mul<'v>(
        #[starlark(require = pos)] a: Value<'v>,
        #[starlark(require = pos)] b: Value<'v>,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> starlark::Result<Value<'v>> {
        let sized = repeatable(a)
            .zip(b.unpack_i32())
            .or_else(|| repeatable(b).zip(a.unpack_i32()));
        if let Some(((len, unit), times)) = sized {
            let total = (len as u64).saturating_mul(times.max(0) as u64);
            if total > MAX_REPEAT as u64 {
                return Err(starlark::Error::new_other(anyhow::anyhow!(
                    "`*` would make {total} {unit} ({len} repeated {times} times); one value may \
                     hold at most {MAX_REPEAT} {unit}"
                )));
            }
        }
        a.mul(b, eval.heap())
    }
}
