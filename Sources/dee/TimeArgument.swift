import DEECore
import Foundation

/// `--since` and `--before`: a duration back from now (`24h`, `90m`, `7d`), an ISO-8601 time
/// (`2026-11-23T10:00:00Z`, `2026-11-23`), or epoch milliseconds (`1795465714287`).
enum TimeArgument {
    /// Epoch milliseconds, or nil when the text is none of the three forms. `now` is epoch milliseconds.
    static func epochMilliseconds(_ text: String, now: Int64) -> Int64? {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        guard !trimmed.isEmpty else { return nil }
        if trimmed.allSatisfy(\.isASCIIDigit) { return Int64(trimmed) }
        if let seconds = Durations.seconds(trimmed) {
            return now - Int64((seconds * 1000).rounded())
        }
        return Timestamp.parse(trimmed)
    }

    /// Now, in epoch milliseconds.
    static var now: Int64 { Int64((Date().timeIntervalSince1970 * 1000).rounded()) }

    static let help = "a duration back from now (24h, 30m, 7d), an ISO-8601 time, or epoch ms"
}

extension Character {
    var isASCIIDigit: Bool { ("0"..."9").contains(self) }
}
