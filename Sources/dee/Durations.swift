import Foundation

/// Durations on the command line: `500ms`, `10s`, `5m`, `24h`, `30d`.
enum Durations {
    static func milliseconds(_ text: String) -> Int { Int(((seconds(text) ?? 0) * 1000).rounded()) }

    static func seconds(_ text: String) -> Double? {
        let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600), ("d", 86400)]
        for (suffix, factor) in units where text.hasSuffix(suffix) {
            if let n = Double(text.dropLast(suffix.count)), n > 0 { return n * factor }
        }
        return nil
    }
}
