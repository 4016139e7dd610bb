// Goroutines under syxdbg (issue 13): the Go runtime's threads (clone), futexes, signals
// (sigaltstack, rt_sigaction, tgkill for preemption), timers and its scheduler.
//
//	goroutines      a worker pool over channels, a mutex-protected counter, select with a
//	                timeout, a sleeping goroutine: deterministic output
package main

import (
	"fmt"
	"runtime"
	"sync"
	"time"
)

func worker(jobs <-chan int, results chan<- [2]int, wg *sync.WaitGroup) {
	defer wg.Done()
	for j := range jobs {
		sum := 0
		for k := 0; k <= j*1000; k++ {
			sum += k % 7
		}
		results <- [2]int{j, sum}
	}
}

func pool() int {
	jobs := make(chan int, 16)
	results := make(chan [2]int, 16)
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go worker(jobs, results, &wg)
	}
	go func() {
		for j := 1; j <= 40; j++ {
			jobs <- j
		}
		close(jobs)
	}()
	go func() { wg.Wait(); close(results) }()
	total := map[int]int{}
	for r := range results {
		total[r[0]] = r[1]
	}
	grand := 0
	for j := 1; j <= 40; j++ {
		grand += total[j]
	}
	return grand
}

func counter() int {
	var mu sync.Mutex
	n := 0
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; k < 1000; k++ {
				mu.Lock()
				n++
				mu.Unlock()
				if k%100 == 0 {
					runtime.Gosched()
				}
			}
		}()
	}
	wg.Wait()
	return n
}

func timers() string {
	done := make(chan string)
	go func() {
		time.Sleep(20 * time.Millisecond)
		done <- "slept"
	}()
	never := make(chan int)
	out := ""
	select {
	case v := <-never:
		out = fmt.Sprint(v)
	case <-time.After(5 * time.Millisecond):
		out = "timeout"
	}
	return out + " " + <-done
}

func main() {
	fmt.Printf("pool: %d\n", pool())
	fmt.Printf("counter: %d\n", counter())
	fmt.Printf("timers: %s\n", timers())
	fmt.Printf("goroutines at the end: %d\n", runtime.NumGoroutine())
}
