import Glibc
import Testing

@testable import Systemd

/// How many CPUs tokend sizes its event loops and hashing pool by.
@Suite("CPU affinity")
struct CPUAffinityTests {
    @Test("Cpus_allowed_list forms count as the kernel means them; garbage does not count")
    func lists() {
        #expect(CPUAffinity.count(list: "\t0") == 1)
        #expect(CPUAffinity.count(list: "0-3") == 4)
        #expect(CPUAffinity.count(list: " 0-3,8,10-11") == 7)
        #expect(CPUAffinity.count(list: "3-1") == nil)
        #expect(CPUAffinity.count(list: "a") == nil)
        #expect(CPUAffinity.count(list: "") == nil)
    }

    @Test("this process's own count is at least 1 and at most the online processors")
    func own() {
        let count = CPUAffinity.allowedCount
        #expect(count >= 1)
        #expect(count <= max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))))
    }
}
