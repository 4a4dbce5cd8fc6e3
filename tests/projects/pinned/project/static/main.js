function runTask(type) {
  fetch("/tasks", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ type: type }),
  })
    .then((response) => response.json())
    .then((data) => poll(data.task_id));
}

function poll(taskId) {
  fetch(`/tasks/${taskId}`)
    .then((response) => response.json())
    .then((res) => {
      const row = document.getElementById(taskId) || document.createElement("tr");
      row.id = taskId;
      row.innerHTML = `<td>${taskId}</td><td>${res.task_status}</td><td>${JSON.stringify(res.task_result)}</td>`;
      document.getElementById("tasks").prepend(row);
      if (res.task_status === "SUCCESS" || res.task_status === "FAILURE") return;
      setTimeout(() => poll(taskId), 1000);
    });
}
