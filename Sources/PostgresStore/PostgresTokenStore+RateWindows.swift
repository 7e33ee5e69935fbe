import PostgresNIO
public import TokenStore

/// The fleet's rate limits in `rate_windows`: one row per (rule, key), changed by one
/// statement each, so attempts on any node count in one window.
///
/// `count` stops at `limit + 1`: a value above the limit means "refused in this window", so a
/// statement knows from the row it returns whether its own attempt counted, without reading
/// first.
extension PostgresTokenStore: SharedRateWindows {
    public func take(rule: String, key: String, limit: Int, window: Double, now: Double) async throws -> Double? {
        guard limit > 0 else { return nil }
        let quiet = quiet
        let (start, count) = try await write("counting a rate-limited attempt") { connection in
            var result: (Double, Int32) = (now, 1)
            for try await row in try await connection.query(
                """
                INSERT INTO rate_windows AS w (rule, key, window_start, window_seconds, count)
                VALUES (\(rule), \(key), \(now), \(window), 1)
                ON CONFLICT (rule, key) DO UPDATE SET
                    window_start = CASE WHEN \(now) >= w.window_start + w.window_seconds THEN \(now)
                        ELSE w.window_start END,
                    window_seconds = \(window),
                    count = CASE WHEN \(now) >= w.window_start + w.window_seconds THEN 1
                        ELSE least(w.count + 1, \(Int32(clamping: limit) &+ 1)) END
                RETURNING window_start, count
                """,
                logger: quiet
            ).decode((Double, Int32).self) {
                result = row
            }
            return result
        }
        guard Int(count) > limit else { return nil }
        return max(0, start + window - now)
    }

    public func refund(rule: String, key: String, limit: Int, window: Double, takenAt: Double) async throws {
        guard limit > 0 else { return }
        let quiet = quiet
        try await write("refunding a rate-limited attempt") { connection in
            try await connection.perform(
                """
                UPDATE rate_windows SET count = greatest(least(count, \(Int32(clamping: limit))) - 1, 0)
                WHERE rule = \(rule) AND key = \(key) AND window_start <= \(takenAt)
                    AND \(takenAt) < window_start + window_seconds AND count > 0
                """,
                logger: quiet
            )
        }
    }
}
