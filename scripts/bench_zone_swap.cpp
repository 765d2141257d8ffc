// What one renewal among N certificates costs each worker in the shared
// zone (docs/performance.md, "At scale"): the journal path swap_check takes
// (updated_since, then generation() of what changed), and, built with
// -DCOMPARE_ALL, the fallback that compares every served certificate.
//
//   make bench-zone-swap    (N=10000)
#include <sys/mman.h>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>
#include "acme/shared_state.h"
int main(int argc, char** argv) {
    const int n = argc > 1 ? std::atoi(argv[1]) : 10000;
    std::size_t size = acme::SharedState::size_for(static_cast<std::size_t>(n));
    void* base = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    acme::SharedState st(base, size);
    st.format();
    std::vector<std::string> ids;
    for (int i = 0; i < n; i++) ids.push_back("site" + std::to_string(i) + ".scale.test-1a2b3c4d");
    for (auto& id : ids) st.certificate_updated(id);
    std::vector<uint64_t> seen(n);
    for (int i = 0; i < n; i++) seen[i] = st.generation(ids[i]);
    int rounds = 20;
    auto t0 = std::chrono::steady_clock::now();
    int changed = 0;
    for (int r = 0; r < rounds; r++) {
        st.certificate_updated(ids[(r * 7919) % n]);
#ifndef COMPARE_ALL
        std::vector<std::string> c;
        static uint64_t g = 0;
        if (g == 0) g = st.global_generation() - 1;
        st.updated_since(g, &c);
        g = st.global_generation();
        for (auto& id : c) { seen[0] = st.generation(id); changed++; }
#else
        for (int i = 0; i < n; i++) {
            uint64_t gen = st.generation(ids[i]);
            if (gen != seen[i]) { seen[i] = gen; changed++; }
        }
#endif
    }
    double us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count() / rounds;
    std::printf("%d certificates: %.1f us of zone work per renewal and worker (%d changes seen)\n", n, us, changed);
}
