import { useState } from 'react'

function App() {
  const [count, setCount] = useState(0)

  return (
    <main className="flex min-h-screen flex-col items-center justify-center gap-8 bg-linear-to-br from-indigo-600 to-purple-700 p-8 text-center">
      <h1 className="text-4xl font-bold tracking-tight text-white drop-shadow-md sm:text-6xl">
        Your app will appear here
      </h1>
      <button
        type="button"
        data-testid="counter"
        className="rounded-lg bg-white px-5 py-2.5 font-mono text-lg font-semibold text-indigo-700 shadow-lg transition hover:bg-indigo-50 active:scale-95"
        onClick={() => setCount((count) => count + 1)}
      >
        Count is {count}
      </button>
    </main>
  )
}

export default App
