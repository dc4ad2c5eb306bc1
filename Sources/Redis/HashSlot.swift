/// A Redis Cluster hash slot: which of the cluster's 16384 slots a key lives in.
///
/// The slot is CRC16 (XMODEM: polynomial 0x1021, initial value 0) of the key modulo 16384, where only the key's hash
/// tag is hashed when it has one: the bytes between its first `{` and the first `}` after that, if there is at least
/// one byte between them. `{p}:run:1` and `{p}:inbox` share a slot; `foo{}{bar}` is hashed whole. As in the cluster
/// specification (and valkey-swift's `HashSlot`, which comes from RediStack).
public struct HashSlot: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// The number of slots in a cluster.
    public static let count = 16384

    /// The slot number, 0 to 16383.
    public let rawValue: UInt16

    /// A slot from its number; nil outside 0...16383.
    public init?(rawValue: Int) {
        guard (0..<Self.count).contains(rawValue) else { return nil }
        self.rawValue = UInt16(rawValue)
    }

    /// The slot of a key given as text (hashed as its UTF-8 bytes, as the server does).
    public init(key: String) {
        var key = key
        self = key.withUTF8 { HashSlot(keyBytes: $0) }
    }

    /// The slot of a key given as bytes.
    public init(keyBytes: some Collection<UInt8>) {
        rawValue = Self.crc16(Self.hashTag(keyBytes)) & 0x3FFF
    }

    /// The part of `key` that is hashed: its hash tag when it has a non-empty one, else the whole key.
    public static func hashTag<Bytes: Collection<UInt8>>(_ key: Bytes) -> Bytes.SubSequence {
        guard let open = key.firstIndex(of: UInt8(ascii: "{")) else { return key[...] }
        let afterOpen = key.index(after: open)
        guard let close = key[afterOpen...].firstIndex(of: UInt8(ascii: "}")), close != afterOpen else {
            return key[...]
        }
        return key[afterOpen..<close]
    }

    /// CRC16-CCITT (XMODEM), the cluster's key hash.
    public static func crc16(_ bytes: some Sequence<UInt8>) -> UInt16 {
        var crc: UInt16 = 0
        for byte in bytes {
            crc = (crc << 8) ^ table[Int(UInt8(truncatingIfNeeded: crc >> 8) ^ byte)]
        }
        return crc
    }

    private static let table: [UInt16] = (0..<256).map { (index: Int) -> UInt16 in
        var crc = UInt16(index) << 8
        for _ in 0..<8 {
            crc = crc & 0x8000 != 0 ? (crc << 1) ^ 0x1021 : crc << 1
        }
        return crc
    }

    public static func < (lhs: HashSlot, rhs: HashSlot) -> Bool { lhs.rawValue < rhs.rawValue }

    public var description: String { String(rawValue) }
}
