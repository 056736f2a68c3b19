package worker

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
)

// TestOutcomeChecksWhatTheJobReports: the job process measures its result
// and collects its files itself, after its script ran, so a script can
// report anything (outside attack round 7 replaced the collector): what
// breaks a limit or the API's contract is refused or omitted here.
func TestOutcomeChecksWhatTheJobReports(t *testing.T) {
	lim := Limits{ResultBytes: 100, OutputFiles: 2, OutputFilesBytes: 20}
	done := &meta{Type: "done", Status: "exited"}

	big := `{"result": "` + strings.Repeat("x", 200) + `"}`
	o := outcome(done, &resultBody{Payload: []byte(big)}, Job{}, lim)
	if o.Kind != KindResultLimit || !strings.Contains(o.Error, "100 bytes") {
		t.Errorf("a result over the limit: %s %q", o.Kind, o.Error)
	}

	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	files := []File{
		{Path: "ok.txt", Size: 2, Content: b64("hi")},
		{Path: "../../etc/cron.d/x", Size: 1, Content: b64("x")},
		{Path: "/abs", Size: 1, Content: b64("x")},
		{Path: "lies.txt", Size: -5, Content: b64("x")},
		{Path: "notb64.txt", Size: 3, Content: "<script>"},
		{Path: "ok.txt", Size: 3, Content: b64("dup")},     // a path already returned
		{Path: "ok.txt/inner", Size: 1, Content: b64("x")}, // under a file
		{Path: "second.txt", Size: 3, Content: b64("abc")},
		{Path: "third.txt", Size: 1, Content: b64("z")}, // over the count
	}
	images := []Image{
		{Format: "text/html", Content: b64("<img onerror=x>")},
		{Format: "png", Content: b64("<svg onload=alert(1)>")}, // says png, is not
		{Format: "png", Content: b64(pngSignature)},
		{Format: "png", Content: b64(pngSignature + "TOOBIGFORTHEBUDGET")},
	}
	v1, _ := json.Marshal(map[string]any{"files": files, "images": images, "files_omitted": -1, "images_omitted": 1 << 62})
	o = Outcome{Kind: KindOK, Result: json.RawMessage(`1`)}
	v1Outcome(&o, v1, lim)
	var paths []string
	for _, f := range o.V1.Files {
		paths = append(paths, f.Path)
	}
	if got := strings.Join(paths, ","); got != "ok.txt,second.txt" || o.V1.FilesOmitted != 7 || o.V1.Files[0].Size != 2 {
		t.Errorf("files kept %q (first %+v), %d omitted; want ok.txt (the first),second.txt and 7", got, o.V1.Files[0], o.V1.FilesOmitted)
	}
	if len(o.V1.Images) != 1 || o.V1.Images[0].Format != "png" || o.V1.ImagesOmitted != maxOmitted {
		t.Errorf("images %+v, %d omitted; want the one png within the budget and the omitted count capped", o.V1.Images, o.V1.ImagesOmitted)
	}
}
