/// The lease scripts shared by the router lease and the partition leases: a lease is a key holding the holder's
/// instance name with a TTL; only the holder renews or releases it.
enum LeaseScripts {
    static let renew = """
        -- renew_lease.lua: extend the lease when this process still holds it.
        -- KEYS[1] the lease key   ARGV[1] holder name   ARGV[2] lease ms
        if redis.call('GET', KEYS[1]) == ARGV[1] then
          return redis.call('PEXPIRE', KEYS[1], ARGV[2])
        end
        return 0
        """

    static let release = """
        -- release_lease.lua: give the lease up, so a successor need not wait for it to expire.
        -- KEYS[1] the lease key   ARGV[1] holder name
        if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
        return 0
        """

    static let fence = """
        -- router_fence.lua: raise a partition's router fence to a new router's epoch (never lower it).
        -- KEYS[1] <prefix>:{p}:rfence   ARGV[1] epoch
        local f = tonumber(redis.call('GET', KEYS[1]) or '0')
        if tonumber(ARGV[1]) > f then redis.call('SET', KEYS[1], ARGV[1]) end
        return 1
        """
}
