import Crypto

/// Hex digests, used for content hashes, fingerprints, idempotency keys and audit checksums.
public enum Hex {
    private static let digits = Array("0123456789abcdef".utf8)

    public static func encode<S: Sequence>(_ bytes: S) -> String where S.Element == UInt8 {
        var out: [UInt8] = []
        out.reserveCapacity(64)
        for b in bytes {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    public static func sha256(_ text: String) -> String {
        var hash = SHA256()
        update(&hash, text)
        return encode(hash.finalize())
    }

    public static func hmacSHA256(_ text: String, key: [UInt8]) -> String {
        var mac = HMAC<SHA256>(key: SymmetricKey(data: key))
        update(&mac, text)
        return encode(mac.finalize())
    }

    /// Feeds `text`'s UTF-8 to a running hash, without copying it into an array first (the digests of the audit
    /// chain and of idempotency keys are taken over several parts, as of their concatenation).
    static func update(_ hash: inout SHA256, _ text: String) {
        var text = text
        text.withUTF8 { hash.update(bufferPointer: UnsafeRawBufferPointer($0)) }
    }

    static func update(_ mac: inout HMAC<SHA256>, _ text: String) {
        var text = text
        text.withUTF8 { mac.update(data: UnsafeRawBufferPointer($0)) }
    }
}
