/// Ids of plans, steps, contacts and runs: 1–128 characters of `A–Z a–z 0–9 . _ - @ +` (SPEC 2), because they
/// become parts of Redis keys and must never collide or escape their key space.
public enum Identifier {
    public static let maxLength = 128

    public static func isValid(_ s: String) -> Bool {
        let utf8 = s.utf8
        guard !utf8.isEmpty, utf8.count <= maxLength else { return false }
        for c in utf8 {
            switch c {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "-"),
                UInt8(ascii: "@"), UInt8(ascii: "+"):
                continue
            default:
                return false
            }
        }
        return true
    }

    /// Throws `bad_request` naming `field` when `s` is not a valid id.
    public static func validate(_ s: String, field: String) throws(DEEError) {
        guard isValid(s) else {
            throw DEEError.badRequest(
                field, "must be 1-128 characters of A-Z a-z 0-9 . _ - @ + (got \(quoted(s)))")
        }
    }

    static func quoted(_ s: String) -> String {
        let shown = s.count > 40 ? String(s.prefix(40)) + "…" : s
        return "\"" + shown.unicodeScalars.map { $0.value < 0x20 ? "?" : String($0) }.joined() + "\""
    }
}

/// A Redis stream entry id, `ms-seq`.
public struct EntryID: Sendable, Hashable, Comparable, CustomStringConvertible {
    public let ms: UInt64
    public let seq: UInt64

    public init(ms: UInt64, seq: UInt64) {
        self.ms = ms
        self.seq = seq
    }

    /// Parses `ms-seq` (decimal digits only, each part at most UInt64.max); nil for anything else.
    public init?(_ text: String) {
        var text = text
        guard let (ms, seq) = text.withUTF8({ Self.parse($0) }) else { return nil }
        self.ms = ms
        self.seq = seq
    }

    /// Byte-wise: `split` and two `UInt64(Substring)` were 1.5 % of the owner's CPU (every entry id and run id).
    static func parse<C: RandomAccessCollection>(_ bytes: C) -> (UInt64, UInt64)? where C.Element == UInt8 {
        guard let dash = bytes.firstIndex(of: 45),
            let ms = Digits.parse(bytes[bytes.startIndex..<dash]),
            let seq = Digits.parse(bytes[bytes.index(after: dash)...])
        else { return nil }
        return (ms, seq)
    }

    public var description: String { "\(ms)-\(seq)" }

    public static func < (a: EntryID, b: EntryID) -> Bool { (a.ms, a.seq) < (b.ms, b.seq) }
}

/// Decimal digits as an unsigned number.
enum Digits {
    /// nil when empty, when a byte is not 0-9, or past UInt64.max.
    static func parse<C: Collection>(_ bytes: C) -> UInt64? where C.Element == UInt8 {
        guard !bytes.isEmpty else { return nil }
        var v: UInt64 = 0
        for b in bytes {
            guard b >= 48, b <= 57 else { return nil }
            let (m, o1) = v.multipliedReportingOverflow(by: 10)
            let (a, o2) = m.addingReportingOverflow(UInt64(b - 48))
            guard !o1, !o2 else { return nil }
            v = a
        }
        return v
    }
}

/// Run ids: `<ms:13>-<seq:6>-<index:5>-<partition>`, derived from the ingress entry id of the command that
/// created the run and the contact's index in it. Fixed width up to the partition, so ids sort as strings in
/// creation order, a redelivered or replayed command derives the same id, and the id names its partition.
public enum RunID {
    public static func make(entry: EntryID, index: Int, partition: Int) -> String {
        // Printed into one buffer: four strings concatenated was 2.5% of the owner's time on execute.
        var out: [UInt8] = []
        out.reserveCapacity(32)
        padded(entry.ms, 13, &out)
        out.append(UInt8(ascii: "-"))
        padded(entry.seq, 6, &out)
        out.append(UInt8(ascii: "-"))
        padded(UInt64(clamping: index), 5, &out)
        out.append(UInt8(ascii: "-"))
        JSONValue.writeInt(partition, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// `n`'s decimal digits, zero-padded on the left to `width`.
    private static func padded(_ n: UInt64, _ width: Int, _ out: inout [UInt8]) {
        var count = 1
        var rest = n
        while rest >= 10 {
            rest /= 10
            count += 1
        }
        out.append(contentsOf: repeatElement(UInt8(ascii: "0"), count: max(width, count)))
        rest = n
        for i in stride(from: out.count - 1, through: out.count - count, by: -1) {
            out[i] = UInt8(ascii: "0") + UInt8(rest % 10)
            rest /= 10
        }
    }

    /// The partition a run id names, or nil when the id is not a run id.
    /// Exactly three "-", the first after 13 characters, and a partition after the last that `Int` reads: digits,
    /// optionally after a "+". Byte-wise (`split` was 12% of the engine's CPU for a listRuns page).
    public static func partition(of runID: String) -> Int? {
        guard Identifier.isValid(runID) else { return nil }
        var id = runID
        return id.withUTF8 { b -> Int? in
            var dashes = 0, first = -1, last = -1
            for i in 0..<b.count where b[i] == 45 {
                dashes += 1
                if dashes == 1 { first = i }
                last = i
            }
            guard dashes == 3, first == 13 else { return nil }
            var digits = b[(last + 1)...]
            if digits.first == 43 { digits = digits.dropFirst() }
            guard let p = Digits.parse(digits), p <= UInt64(Int.max) else { return nil }
            return Int(p)
        }
    }

    /// The smallest run id a command at `entry` (or later) can create: runs below it existed before.
    public static func lowerBound(for entry: EntryID) -> String {
        pad(entry.ms, 13) + "-" + pad(entry.seq, 6) + "-"
    }

    /// A string that sorts just above every run id of millisecond `ms` ("-~": `~` follows every digit), and
    /// below every id of a later one: a bound for counting ids above a point (listRuns' seek).
    public static func bound(ms: UInt64) -> String { pad(ms, 13) + "-~" }

    /// Just above every run id of (`ms`, `seq`, `index`), below every later one.
    public static func bound(ms: UInt64, seq: UInt64, index: UInt64) -> String {
        pad(ms, 13) + "-" + pad(seq, 6) + "-" + pad(index, 5) + "-~"
    }

    /// The millisecond, entry sequence and index of a run id with the usual widths (13, 6 and 5 digits); nil
    /// for anything else (a wider sequence or index no longer sorts with the others as a string).
    public static func components(of runID: String) -> (ms: UInt64, seq: UInt64, index: UInt64)? {
        // Byte-wise (`split` was 2 % of the owner's CPU): 13 digits, "-", 6 digits, "-", 5 digits, "-", then a
        // partition with no further "-".
        func parse(_ b: UnsafeBufferPointer<UInt8>) -> (UInt64, UInt64, UInt64)? {
            guard b.count >= 27, b[13] == 45, b[20] == 45, b[26] == 45, !b[27...].contains(45),
                let ms = Digits.parse(b[0..<13]), let seq = Digits.parse(b[14..<20]),
                let index = Digits.parse(b[21..<26])
            else { return nil }
            return (ms, seq, index)
        }
        var id = runID
        guard let parts = id.withUTF8(parse) else { return nil }
        return (parts.0, parts.1, parts.2)
    }

    private static func pad(_ n: UInt64, _ width: Int) -> String {
        var out: [UInt8] = []
        padded(n, width, &out)
        return String(decoding: out, as: UTF8.self)
    }
}

/// The partition of a contact: CRC32 (IEEE) of its id modulo the partition count. Stable across processes
/// and languages, so any producer can compute it.
public enum Partitioning {
    public static func partition(ofContact contactID: String, count: Int) -> Int {
        guard count > 1 else { return 0 }
        return Int(crc32(Array(contactID.utf8)) % UInt32(count))
    }

    /// The partition that handles one element of a bulkExecute's `contacts`: its contact's, or partition 0 for an
    /// element without a valid id (which partition 0 counts as an error).
    public static func partition(ofBulkContact contact: JSONValue, count: Int) -> Int {
        guard let id = contact.object?["id"]?.string, Identifier.isValid(id) else { return 0 }
        return partition(ofContact: id, count: count)
    }

    static let table: [UInt32] = (0..<256).map { i -> UInt32 in
        var c = UInt32(i)
        for _ in 0..<8 { c = (c & 1) != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }

    public static func crc32(_ bytes: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for b in bytes { crc = table[Int((crc ^ UInt32(b)) & 0xFF)] ^ (crc >> 8) }
        return crc ^ 0xFFFF_FFFF
    }
}
