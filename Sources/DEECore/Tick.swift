/// Arithmetic on ticks and counters that never traps (SPEC 6). Input is bounded when it is validated
/// (``WholeNumber``), but a run stored by an older engine, or a clock near the top of `Int`, may still hold a
/// huge value: a sum past `Int.max` is clamped to it, and a wake tick there is simply never reached.
public enum Tick {
    /// The largest tick; a wake tick past it is clamped to it.
    public static let max = Int.max

    /// `t + n`, clamped to `Int.min ... Int.max` instead of trapping.
    public static func after(_ t: Int, _ n: Int) -> Int {
        let (sum, overflow) = t.addingReportingOverflow(n)
        guard overflow else { return sum }
        return n > 0 ? Int.max : Int.min
    }

    /// `n + 1`, clamped: step counts, attempts and audit counts.
    public static func incremented(_ n: Int) -> Int { after(n, 1) }
}

/// The numbers of plans and commands (SPEC 6): whole numbers from 0 to 2,147,483,647 unless a narrower range
/// is given. Numbers inside `params`, `variables`, contacts and branch values are data, not bounded here.
public enum WholeNumber {
    /// The largest number a plan or a command may give.
    public static let max = 2_147_483_647

    /// The whole number `value` holds when it lies in `min ... max`; nil for anything else (not a number, a
    /// fraction, out of range, or too large for an `Int`: 9223372036854775808 is a double here).
    public static func value(_ value: JSONValue, min: Int = 0, max: Int = WholeNumber.max) -> Int? {
        guard let n = value.int, n >= min, n <= max else { return nil }
        return n
    }

    /// A value as an error message shows it: its JSON, cut at 40 characters.
    public static func shown(_ value: JSONValue) -> String {
        let text = value.canonical
        return text.count > 40 ? String(text.prefix(40)) + "…" : text
    }
}
