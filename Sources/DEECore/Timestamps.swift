/// ISO-8601 UTC with milliseconds, as JavaScript's `Date` prints it, computed from epoch milliseconds with no
/// clock and no locale (days-from-civil arithmetic), so that it is deterministic.
public enum Timestamp {
    public static func iso(_ ms: Int64) -> String {
        let days = floorDiv(ms, 86_400_000)
        // Not `ms - days * 86_400_000`: that product is below Int64.min near it.
        let rest = ms % 86_400_000
        let msOfDay = rest < 0 ? rest + 86_400_000 : rest
        let (y, m, d) = civil(fromDays: days)
        let h = msOfDay / 3_600_000
        let mi = (msOfDay / 60_000) % 60
        let s = (msOfDay / 1000) % 60
        let milli = msOfDay % 1000
        guard (0...9999).contains(y) else {
            return "\(pad(y, 4))-\(pad(m, 2))-\(pad(d, 2))T\(pad(h, 2)):\(pad(mi, 2)):\(pad(s, 2)).\(pad(milli, 3))Z"
        }
        // Years 0…9999 (every clock a run sees): 24 bytes written in place; interpolation was 3 % of the owner's CPU
        // (a run's reply, its audit entry and its event each print a timestamp).
        return String(unsafeUninitializedCapacity: 24) { out in
            func put(_ value: Int64, _ width: Int, at start: Int) {
                var v = value
                for i in stride(from: start + width - 1, through: start, by: -1) {
                    out[i] = UInt8(truncatingIfNeeded: 48 + v % 10)
                    v /= 10
                }
            }
            put(y, 4, at: 0)
            out[4] = 45
            put(m, 2, at: 5)
            out[7] = 45
            put(d, 2, at: 8)
            out[10] = 84
            put(h, 2, at: 11)
            out[13] = 58
            put(mi, 2, at: 14)
            out[16] = 58
            put(s, 2, at: 17)
            out[19] = 46
            put(milli, 3, at: 20)
            out[23] = 90
            return 24
        }
    }

    /// Parses `YYYY-MM-DD`, `YYYY-MM-DDTHH:MM[:SS[.fff]](Z|±HH:MM)`, or epoch milliseconds as digits.
    public static func parse(_ text: String) -> Int64? {
        if let ms = Int64(text) { return ms }
        let c = Array(text.utf8)
        func num(_ from: Int, _ len: Int) -> Int64? {
            guard from + len <= c.count else { return nil }
            var v: Int64 = 0
            for i in from..<(from + len) {
                guard c[i] >= 48, c[i] <= 57 else { return nil }
                v = v * 10 + Int64(c[i] - 48)
            }
            return v
        }
        guard c.count >= 10, let y = num(0, 4), c[4] == 45, let mo = num(5, 2), c[7] == 45, let d = num(8, 2),
            (1...12).contains(mo), (1...31).contains(d)
        else { return nil }
        var ms = days(fromCivil: y, mo, d) * 86_400_000
        if c.count == 10 { return ms }
        guard c.count >= 16, c[10] == 84 || c[10] == 116, let h = num(11, 2), c[13] == 58, let mi = num(14, 2),
            h < 24, mi < 60
        else { return nil }
        ms += h * 3_600_000 + mi * 60_000
        var i = 16
        if i < c.count, c[i] == 58 {
            guard let s = num(i + 1, 2), s < 61 else { return nil }
            ms += s * 1000
            i += 3
            if i < c.count, c[i] == 46 {
                i += 1
                var digits = 0
                var frac: Int64 = 0
                while i < c.count, c[i] >= 48, c[i] <= 57 {
                    if digits < 3 { frac = frac * 10 + Int64(c[i] - 48) }
                    digits += 1
                    i += 1
                }
                guard digits > 0 else { return nil }
                if digits < 3 {
                    for _ in digits..<3 { frac *= 10 }
                }
                ms += frac
            }
        }
        guard i < c.count else { return nil }
        if c[i] == 90 || c[i] == 122 {
            return i + 1 == c.count ? ms : nil
        }
        guard c[i] == 43 || c[i] == 45, c.count == i + 6, let oh = num(i + 1, 2), c[i + 3] == 58,
            let om = num(i + 4, 2)
        else { return nil }
        let offset = (oh * 60 + om) * 60_000
        return c[i] == 43 ? ms - offset : ms + offset
    }

    /// Floor division for b > 0; `-a` would trap for Int64.min.
    private static func floorDiv(_ a: Int64, _ b: Int64) -> Int64 {
        let q = a / b
        return a % b < 0 ? q - 1 : q
    }

    private static func civil(fromDays z0: Int64) -> (Int64, Int64, Int64) {
        let z = z0 + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let y = yoe + era * 400
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (m <= 2 ? y + 1 : y, m, d)
    }

    private static func days(fromCivil y0: Int64, _ m: Int64, _ d: Int64) -> Int64 {
        let y = m <= 2 ? y0 - 1 : y0
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    private static func pad(_ n: Int64, _ width: Int) -> String {
        let s = String(n)
        return s.count >= width ? s : String(repeating: "0", count: width - s.count) + s
    }
}
