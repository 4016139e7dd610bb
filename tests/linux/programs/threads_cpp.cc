// std::thread, std::mutex and exceptions thrown and caught in threads (g++ -static -pthread).
#include <thread>
#include <vector>
#include <mutex>
#include <iostream>
#include <stdexcept>
#include <atomic>
int main() {
    std::mutex m; long total = 0; std::atomic<int> caught{0};
    std::vector<std::thread> ts;
    for (int i = 0; i < 4; i++) ts.emplace_back([&, i] {
        try { if (i % 2) throw std::runtime_error("odd"); }
        catch (const std::exception &e) { caught++; }
        for (int k = 0; k < 1000; k++) { std::lock_guard<std::mutex> g(m); total += i; }
    });
    for (auto &t : ts) t.join();
    std::cout << "total " << total << " caught " << caught << std::endl;
}
