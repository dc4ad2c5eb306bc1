/// Where and how to connect: parsed from `redis://[user:password@]host:port[/db]`.
public struct RedisConfiguration: Sendable, Equatable {
    public var host: String
    public var port: Int
    public var database: Int
    public var username: String?
    public var password: String?
    /// Socket timeout for every call. Callers that block (`XREADGROUP BLOCK`) must block for less than this.
    public var timeoutSeconds: Double

    public init(
        host: String = "127.0.0.1",
        port: Int = 6379,
        database: Int = 0,
        username: String? = nil,
        password: String? = nil,
        timeoutSeconds: Double = 10
    ) {
        self.host = host
        self.port = port
        self.database = database
        self.username = username
        self.password = password
        self.timeoutSeconds = timeoutSeconds
    }

    /// Parses `redis://[user:password@]host[:port][/db]`.
    public init(url: String, timeoutSeconds: Double = 10) throws(RedisError) {
        guard url.hasPrefix("redis://") else {
            throw RedisError(.configuration, "URL must start with redis:// (got \(url))")
        }
        var rest = Substring(url.dropFirst("redis://".count))
        var username: String?
        var password: String?
        if let at = rest.lastIndex(of: "@") {
            let userinfo = rest[..<at]
            rest = rest[rest.index(after: at)...]
            if let colon = userinfo.firstIndex(of: ":") {
                let user = String(userinfo[..<colon])
                username = user.isEmpty ? nil : user
                password = String(userinfo[userinfo.index(after: colon)...])
            } else {
                password = String(userinfo)
            }
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
        self.init(
            host: host, port: port, database: database, username: username, password: password,
            timeoutSeconds: timeoutSeconds)
    }

    /// The URL form, with the password hidden, for logs.
    public var displayURL: String {
        let auth = password == nil ? "" : "\(username ?? ""):***@"
        return "redis://\(auth)\(host):\(port)/\(database)"
    }
}
