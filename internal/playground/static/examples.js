// The playground's examples: the seed's test cases (case 1, GET /health, is
// the status in the page's header), then what POST /v1/execute adds.
// Each has a script and, optionally, an input (JSON text) and a timeout.
export const examples = [
  {
    name: "Seed 2: basic return value",
    script: "def main():\n    return {\"message\": \"Hello, World!\", \"value\": 42}",
  },
  {
    name: "Seed 3: print statements",
    script: "def main():\n    print(\"Starting calculation...\")\n    result = 10 * 5\n    print(f\"Result is {result}\")\n    return {\"answer\": result}",
  },
  {
    name: "Seed 4: NumPy",
    script: "import numpy as np\n\ndef main():\n    arr = np.array([1, 2, 3, 4, 5])\n    return {\n        \"sum\": int(np.sum(arr)),\n        \"mean\": float(np.mean(arr)),\n        \"max\": int(np.max(arr))\n    }",
  },
  {
    name: "Seed 5: pandas",
    script: "import pandas as pd\n\ndef main():\n    df = pd.DataFrame({\n        \"name\": [\"Alice\", \"Bob\", \"Charlie\"],\n        \"age\": [25, 30, 35]\n    })\n    return {\n        \"rows\": len(df),\n        \"columns\": list(df.columns),\n        \"mean_age\": float(df[\"age\"].mean())\n    }",
  },
  {
    name: "Seed 6: pandas and NumPy together",
    script: "import pandas as pd\nimport numpy as np\n\ndef main():\n    print(\"Creating dataset...\")\n    data = pd.DataFrame({\n        \"x\": np.arange(1, 11),\n        \"y\": np.arange(1, 11) ** 2\n    })\n    print(f\"Dataset has {len(data)} rows\")\n    \n    return {\n        \"x_sum\": int(data[\"x\"].sum()),\n        \"y_sum\": int(data[\"y\"].sum()),\n        \"correlation\": float(data[\"x\"].corr(data[\"y\"]))\n    }",
  },
  {
    name: "Seed 7: complex calculation",
    script: "import math\n\ndef main():\n    print(\"Calculating fibonacci...\")\n    def fib(n):\n        if n <= 1:\n            return n\n        return fib(n-1) + fib(n-2)\n    \n    result = fib(10)\n    print(f\"Fibonacci(10) = {result}\")\n    return {\"fibonacci_10\": result}",
  },
  {
    name: "Seed 8: missing main()",
    script: "def other_function():\n    return {\"value\": 42}",
  },
  {
    name: "Seed 9: syntax error",
    script: "def main():\n    return {invalid syntax here}",
  },
  {
    name: "Seed 10: non-serializable return",
    script: "class MyClass:\n    pass\n\ndef main():\n    return MyClass()",
  },
  {
    name: "Plot: a matplotlib figure",
    script: "import matplotlib.pyplot as plt\nimport numpy as np\n\ndef main():\n    x = np.linspace(0, 2 * np.pi, 200)\n    fig, ax = plt.subplots(figsize=(6, 3.5))\n    ax.plot(x, np.sin(x), label=\"sin\")\n    ax.plot(x, np.cos(x), label=\"cos\")\n    ax.set_title(\"Open figures come back as images\")\n    ax.legend()\n    return {\"points\": len(x)}\n",
  },
  {
    name: "File: write a CSV to download",
    script: "import pandas as pd\n\ndef main():\n    df = pd.DataFrame({\"month\": [\"jan\", \"feb\", \"mar\"], \"total\": [3, 5, 4]})\n    df[\"share\"] = df.total / df.total.sum()\n    # Files the script writes in its working directory come back.\n    df.to_csv(\"report.csv\", index=False)\n    with open(\"notes.txt\", \"w\") as f:\n        f.write(\"best month: %s\\n\" % df.loc[df.total.idxmax(), \"month\"])\n    return {\"rows\": len(df)}\n",
  },
  {
    name: "Input: main(input) with JSON data",
    script: "def main(data):\n    # The Input box's JSON is passed to main().\n    total = sum(item[\"price\"] * item[\"qty\"] for item in data[\"items\"])\n    print(f\"{len(data['items'])} items for {data['customer']}\")\n    return {\"customer\": data[\"customer\"], \"total\": round(total, 2)}\n",
    input: "{\n  \"customer\": \"Ada\",\n  \"items\": [\n    {\"price\": 2.5, \"qty\": 4},\n    {\"price\": 10, \"qty\": 1}\n  ]\n}",
  },
  {
    name: "Live output: prints over time",
    script: "import sys\nimport time\n\ndef main():\n    for i in range(1, 6):\n        print(f\"step {i} of 5\")\n        time.sleep(0.5)\n    print(\"warnings go to stderr\", file=sys.stderr)\n    return \"done\"\n",
  },
  {
    name: "Exception: traceback and failing line",
    script: "def average(values):\n    return sum(values) / len(values)\n\ndef main():\n    print(\"averaging an empty list...\")\n    return average([])\n",
  },
];
