import Redis
import Testing

private func configurationError(_ url: String) -> RedisError? {
    do {
        _ = try RedisConfiguration(url: url)
        return nil
    } catch {
        return error
    }
}

@Suite("RedisConfiguration(url:)")
struct RedisConfigurationTests {
    @Test func hostAndPort() throws {
        let c = try RedisConfiguration(url: "redis://10.1.2.3:6380")
        #expect(c.host == "10.1.2.3")
        #expect(c.port == 6380)
        #expect(c.database == 0)
        #expect(c.username == nil)
        #expect(c.password == nil)
        #expect(c.timeoutSeconds == 10)
    }

    @Test func defaultPort() throws {
        let c = try RedisConfiguration(url: "redis://redis.internal")
        #expect(c.host == "redis.internal")
        #expect(c.port == 6379)
        let d = try RedisConfiguration(url: "redis://redis.internal/4")
        #expect(d.port == 6379)
        #expect(d.database == 4)
    }

    @Test func emptyHostAndLocalhostMeanLoopback() throws {
        #expect(try RedisConfiguration(url: "redis://").host == "127.0.0.1")
        #expect(try RedisConfiguration(url: "redis://:7000").host == "127.0.0.1")
        #expect(try RedisConfiguration(url: "redis://:7000").port == 7000)
        #expect(try RedisConfiguration(url: "redis://localhost:7001").host == "127.0.0.1")
    }

    @Test func userAndPassword() throws {
        let c = try RedisConfiguration(url: "redis://alice:s3cret@cache:6390/2")
        #expect(c.username == "alice")
        #expect(c.password == "s3cret")
        #expect(c.host == "cache")
        #expect(c.port == 6390)
        #expect(c.database == 2)
    }

    @Test func passwordOnly() throws {
        let withColon = try RedisConfiguration(url: "redis://:s3cret@cache")
        #expect(withColon.username == nil)
        #expect(withColon.password == "s3cret")
        let bare = try RedisConfiguration(url: "redis://s3cret@cache")
        #expect(bare.username == nil)
        #expect(bare.password == "s3cret")
    }

    @Test func passwordWithSpecialCharacters() throws {
        let c = try RedisConfiguration(url: "redis://bob:p@ss:w/rd@cache:1234")
        #expect(c.username == "bob")
        #expect(c.password == "p@ss:w/rd")
        #expect(c.host == "cache")
        #expect(c.port == 1234)
        #expect(c.database == 0)
    }

    @Test func userAndPasswordArePercentDecoded() throws {
        let c = try RedisConfiguration(url: "redis://dee-engine:p%40ss%3Aw%2Frd%25@cache:6390/1")
        #expect(c.username == "dee-engine")
        #expect(c.password == "p@ss:w/rd%")
        #expect(c.host == "cache")
        #expect(c.port == 6390)
        #expect(c.database == 1)
        #expect(try RedisConfiguration(url: "redis://us%65r:%C3%A9t%C3%A9@h").username == "user")
        #expect(try RedisConfiguration(url: "redis://user:%C3%A9t%C3%A9@h").password == "été")
        #expect(try RedisConfiguration(url: "redis://:%41b@h").password == "Ab")
    }

    @Test(arguments: ["redis://u:bad%zzsecret@h", "redis://u:secret%@h", "redis://u:secret%4@h", "redis://u%g1:secret@h"])
    func badPercentEscapeNeverShowsThePassword(_ url: String) {
        let error = configurationError(url)
        #expect(error?.kind == .configuration)
        #expect(error?.description.contains("secret") == false, "\(String(describing: error))")
        #expect(error?.description.contains("%") == true)
    }

    @Test func noDescriptionShowsThePassword() throws {
        let c = try RedisConfiguration(url: "redis://dee-engine:p%40ss%3Aw%2Frd%25@cache:6390/1")
        var dumped = ""
        dump(c, to: &dumped)
        for text in [c.displayURL, c.description, c.debugDescription, "\(c)", String(reflecting: c), dumped] {
            #expect(!text.contains("p@ss"), "\(text)")
            #expect(!text.contains("p%40ss"), "\(text)")
            #expect(text.contains("cache:6390"), "\(text)")
        }
        #expect(c.displayURL == "redis://dee-engine:***@cache:6390/1")
    }

    @Test(arguments: ["http://u:s3cret@h:6379", "rediss://:s3cret@h", "u:s3cret@h:6379"])
    func badSchemeNeverShowsThePassword(_ url: String) {
        let error = configurationError(url)
        #expect(error?.kind == .configuration)
        #expect(error?.description.contains("s3cret") == false, "\(String(describing: error))")
        #expect(error?.description.contains("@h") == true, "\(String(describing: error))")
    }

    @Test func database() throws {
        #expect(try RedisConfiguration(url: "redis://h:1/0").database == 0)
        #expect(try RedisConfiguration(url: "redis://h:1/15").database == 15)
        #expect(try RedisConfiguration(url: "redis://h:1/").database == 0)
    }

    @Test(arguments: ["redis://h:0", "redis://h:65536", "redis://h:abc", "redis://h:", "redis://h:-1", "redis://h:6379x"])
    func badPort(_ url: String) {
        let error = configurationError(url)
        #expect(error?.kind == .configuration)
        #expect(error?.message.contains("port") == true)
    }

    @Test(arguments: ["redis://h:6379/x", "redis://h/-1", "redis://h:6379/1/2", "redis://h/1.5"])
    func badDatabase(_ url: String) {
        let error = configurationError(url)
        #expect(error?.kind == .configuration)
        #expect(error?.message.contains("database") == true)
    }

    @Test(arguments: ["http://h:6379", "h:6379", "", "rediss://h:6379", "REDIS://h"])
    func badScheme(_ url: String) {
        #expect(configurationError(url)?.kind == .configuration)
    }

    @Test func extremesOfThePortRange() throws {
        #expect(try RedisConfiguration(url: "redis://h:1").port == 1)
        #expect(try RedisConfiguration(url: "redis://h:65535").port == 65535)
    }

    @Test func timeoutIsPassedThrough() throws {
        #expect(try RedisConfiguration(url: "redis://h", timeoutSeconds: 0.5).timeoutSeconds == 0.5)
    }

    @Test func displayURLHidesThePassword() throws {
        #expect(try RedisConfiguration(url: "redis://alice:s3cret@cache:6390/2").displayURL == "redis://alice:***@cache:6390/2")
        #expect(try RedisConfiguration(url: "redis://:s3cret@cache").displayURL == "redis://:***@cache:6379/0")
        #expect(try RedisConfiguration(url: "redis://cache").displayURL == "redis://cache:6379/0")
        #expect(!(try RedisConfiguration(url: "redis://alice:s3cret@cache").displayURL.contains("s3cret")))
    }

    @Test func errorDescriptions() {
        #expect(RedisError(.server, "ERR x").description == "redis server error: ERR x")
        #expect(RedisError(.connection, "gone").description == "redis connection error: gone")
        #expect(RedisError(.configuration, "bad").description == "redis configuration error: bad")
        #expect(RedisError(.unexpectedReply, "hm").description == "unexpected redis reply: hm")
    }

    @Test func respValueAccessors() {
        #expect(RESPValue.string("12").int == 12)
        #expect(RESPValue.string("x").int == nil)
        #expect(RESPValue.integer(7).string == "7")
        #expect(RESPValue.integer(7).int == 7)
        #expect(RESPValue.null.array == [])
        #expect(RESPValue.null.string == nil)
        #expect(RESPValue.null.isNull)
        #expect(!RESPValue.string("").isNull)
        #expect(RESPValue.string("x").array == nil)
        #expect(RESPValue.array([.integer(1)]).array == [.integer(1)])
        #expect(RESPValue.error("ERR").string == nil)
        #expect(RESPValue.error("ERR").int == nil)
    }
}
