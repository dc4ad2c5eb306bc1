/// Where and how to connect: parsed from `redis://[user:password@]host:port[/db][?cluster=1]`.
///
/// The password never appears in a description, a debug description, a mirror (`dump`), ``displayURL`` or an
/// error: print the configuration freely.
public struct RedisConfiguration: Sendable, Equatable, CustomStringConvertible, CustomDebugStringConvertible,
    CustomReflectable
{
    public var host: String
    public var port: Int
    public var database: Int
    public var username: String?
    public var password: String?
    /// Socket timeout for every call. Callers that block (`XREADGROUP BLOCK`) must block for less than this.
    public var timeoutSeconds: Double
    /// The server is one node of a Redis Cluster: use ``RedisClusterConnection``, which routes each command to the
    /// master of its key's slot. A cluster has database 0 only.
    public var cluster: Bool

    public init(
        host: String = "127.0.0.1",
        port: Int = 6379,
        database: Int = 0,
        username: String? = nil,
        password: String? = nil,
        timeoutSeconds: Double = 10,
        cluster: Bool = false
    ) {
        self.host = host
        self.port = port
        self.database = database
        self.username = username
        self.password = password
        self.timeoutSeconds = timeoutSeconds
        self.cluster = cluster
    }

    /// Parses `redis://[user:password@]host[:port][/db][?cluster=1]`. User and password are percent-decoded
    /// (`p%40ss` is `p@ss`), as in any URL; a raw `@`, `:` or `/` inside the password still works (the last `@`
    /// ends it). No error message contains the password, nor the user information at all.
    ///
    /// The query after the address takes one parameter, `cluster` (`1`, `true`, `yes`, or `0`, `false`, `no`); any
    /// other is an error, so a typo does not go unnoticed. A cluster URL with a database other than 0 is an error:
    /// Redis Cluster has database 0 only.
    public init(url: String, timeoutSeconds: Double = 10) throws(RedisError) {
        guard url.hasPrefix("redis://") else {
            throw RedisError(.configuration, "URL must start with redis:// (got \(Self.redacted(url)))")
        }
        var rest = Substring(url.dropFirst("redis://".count))
        var username: String?
        var password: String?
        if let at = rest.lastIndex(of: "@") {
            let userinfo = rest[..<at]
            rest = rest[rest.index(after: at)...]
            let rawUser: Substring?
            let rawPassword: Substring
            if let colon = userinfo.firstIndex(of: ":") {
                rawUser = userinfo[..<colon]
                rawPassword = userinfo[userinfo.index(after: colon)...]
            } else {
                rawUser = nil
                rawPassword = userinfo
            }
            if let rawUser {
                guard let user = Self.percentDecoded(rawUser) else {
                    throw RedisError(.configuration, "the user name in the URL has a % not followed by two hex digits (write % as %25)")
                }
                username = user.isEmpty ? nil : user
            }
            guard let decoded = Self.percentDecoded(rawPassword) else {
                throw RedisError(.configuration, "the password in the URL has a % not followed by two hex digits (write % as %25)")
            }
            password = decoded
        }
        var cluster = false
        if let question = rest.firstIndex(of: "?") {
            cluster = try Self.clusterParameter(rest[rest.index(after: question)...])
            rest = rest[..<question]
        }
        var database = 0
        if let slash = rest.firstIndex(of: "/") {
            let dbText = rest[rest.index(after: slash)...]
            rest = rest[..<slash]
            if !dbText.isEmpty {
                guard let db = Int(dbText), db >= 0 else {
                    throw RedisError(.configuration, "database in URL must be a number (got \(dbText))")
                }
                database = db
            }
        }
        var host = String(rest)
        var port = 6379
        if let colon = rest.lastIndex(of: ":") {
            host = String(rest[..<colon])
            guard let p = Int(rest[rest.index(after: colon)...]), (1...65535).contains(p) else {
                throw RedisError(.configuration, "port in URL must be 1-65535 (got \(rest[rest.index(after: colon)...]))")
            }
            port = p
        }
        if host.isEmpty { host = "127.0.0.1" }
        if host == "localhost" { host = "127.0.0.1" }
        if cluster, database != 0 {
            throw RedisError(
                .configuration,
                "a Redis Cluster has database 0 only: remove /\(database) from the URL, or leave out cluster=1")
        }
        self.init(
            host: host, port: port, database: database, username: username, password: password,
            timeoutSeconds: timeoutSeconds, cluster: cluster)
    }

    /// The URL form, with the password hidden, for logs.
    public var displayURL: String {
        let auth = password == nil ? "" : "\(username ?? ""):***@"
        return "redis://\(auth)\(host):\(port)/\(database)" + (cluster ? "?cluster=1" : "")
    }

    public var description: String { displayURL }
    public var debugDescription: String { "RedisConfiguration(\(displayURL), timeout \(timeoutSeconds) s)" }
    public var customMirror: Mirror {
        Mirror(self, children: ["url": displayURL, "timeoutSeconds": timeoutSeconds], displayStyle: .struct)
    }

    /// The `cluster` flag of a URL's query (`cluster=1`); any other parameter is an error.
    private static func clusterParameter(_ query: Substring) throws(RedisError) -> Bool {
        var cluster = false
        for parameter in query.split(separator: "&") {
            let parts = parameter.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let value = parts.count > 1 ? parts[1].lowercased() : "1"
            guard parts[0] == "cluster" else {
                throw RedisError(.configuration, "unknown URL parameter \(parts[0]) (the only one is cluster=1)")
            }
            switch value {
            case "1", "true", "yes": cluster = true
            case "0", "false", "no": cluster = false
            default: throw RedisError(.configuration, "cluster= in the URL must be 1 or 0 (got \(value))")
            }
        }
        return cluster
    }

    /// `text` with its user information (anything before the last `@`, after any `scheme://`) replaced by `***`.
    static func redacted(_ text: String) -> String {
        guard let at = text.lastIndex(of: "@") else { return text }
        var start = text.startIndex
        if let colon = text.firstIndex(of: ":"), text[colon...].hasPrefix("://"), colon < at {
            start = text.index(colon, offsetBy: 3)
        }
        return String(text[..<start]) + "***" + String(text[at...])
    }

    /// Percent-decodes URL user information (UTF-8); nil when a `%` is not followed by two hex digits.
    static func percentDecoded(_ text: Substring) -> String? {
        guard text.contains("%") else { return String(text) }
        var bytes: [UInt8] = []
        var utf8 = text.utf8[...]
        while let c = utf8.first {
            utf8 = utf8.dropFirst()
            guard c == UInt8(ascii: "%") else {
                bytes.append(c)
                continue
            }
            guard utf8.count >= 2, let hi = hexValue(utf8[utf8.startIndex]),
                let lo = hexValue(utf8[utf8.index(after: utf8.startIndex)])
            else { return nil }
            bytes.append(hi << 4 | lo)
            utf8 = utf8.dropFirst(2)
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    private static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}
