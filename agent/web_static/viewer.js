// 3D views of structures and trajectories: every `.viewer[data-atoms-url]` on the page is drawn by WEAS
// (weas-widget's bundled widget.js, served from the installed package), driven through its anywidget entry point
// with a small in-page model instead of a Jupyter kernel.
import widget from "/web/vendor/weas/widget.js";

// weas_widget.base_widget.WeasWidget's trait defaults (0.2.6), which its render() reads.
const DEFAULTS = {
  ready: false, logLevel: "warn", atoms: {}, selectedAtomsIndices: [], boundary: [[0, 1], [0, 1], [0, 1]],
  modelStyle: 1, colorBy: "Element", colorType: "JMOL", colorRamp: ["red", "blue"], radiusType: "Covalent",
  materialType: "Standard", atomLabelType: "None", showBondedAtoms: false, showHydrogenBonds: false,
  showOutBoundaryBonds: false, hideLongBonds: true, atomScales: [], modelSticks: [], modelPolyhedras: [],
  volumetricData: { values: [[[]]] }, fermiData: {}, imageData: "", vectorField: {}, showVectorField: true,
  guiConfig: {}, currentFrame: 0, instancedMeshPrimitive: [], anyMesh: [], text: [], viewerStyle: {},
  cameraSetting: {}, cameraZoom: 0, cameraPosition: [], cameraLookAt: [], cameraType: "Orthographic",
  js_task: {}, python_task: {}, stateSnapshot: {}, debug: false, speciesSettings: {}, cellSettings: {},
  bondSettings: {}, isoSettings: {}, fermiSettings: {}, sliceSettings: {}, phonon: {}, highlightSettings: {},
  measurementSettings: {}, animationState: {}, showAtomLegend: true, continuousUpdate: true,
};

function makeModel(state) {
  const handlers = {};
  return {
    get: (key) => state[key],
    set: (key, value) => { state[key] = value; },
    on: (event, fn) => { (handlers[event] ||= []).push(fn); },
    off: () => {},
    save_changes: () => {},
    send: () => {},
    update: (key, value) => { state[key] = value; (handlers["change:" + key] || []).forEach((fn) => fn()); },
  };
}

function boundaryFor(n) {
  // n = 1: the cell plus the periodic images of atoms on its faces; n > 1: an n x n x n block of cells.
  return n === 1 ? [[-0.01, 1.01], [-0.01, 1.01], [-0.01, 1.01]] : [[0, n], [0, n], [0, n]];
}

function fail(status, message) {
  status.textContent = message;
  status.className = "viewer-status error";
}

async function mount(el) {
  const box = el.closest(".viewer-box");
  const status = box.querySelector(".viewer-status");
  let response, data;
  try {
    response = await fetch(el.dataset.atomsUrl);
    data = await response.json();
  } catch (err) {
    return fail(status, `could not load the structure: ${err}`);
  }
  if (!response.ok) return fail(status, data.error || `could not load the structure (HTTP ${response.status})`);
  const frames = Array.isArray(data.atoms) ? data.atoms : null;
  const model = makeModel({
    ...DEFAULTS,
    atoms: data.atoms,
    boundary: boundaryFor(1),
    viewerStyle: { width: "100%", height: "100%" },
    animationState: frames ? { isPlaying: true, frameDuration: 100 } : {},
  });
  try {
    await widget.render({ model, el });
  } catch (err) {
    return fail(status, `the 3D viewer failed: ${err}`);
  }
  box.querySelector(".repeat").addEventListener("change", (ev) => {
    model.update("boundary", boundaryFor(Number(ev.target.value)));
  });
  box.querySelector(".style").addEventListener("change", (ev) => {
    model.update("modelStyle", Number(ev.target.value));
  });
  status.textContent = frames
    ? `${frames.length} frames of ${frames[0].symbols.length} atoms` +
      (data.shown_every > 1 ? ` (every ${data.shown_every}th of ${data.n_frames})` : "")
    : `${data.atoms.symbols.length} atoms drawn`;
  el.dataset.ready = "true";
}

const viewers = [...document.querySelectorAll(".viewer[data-atoms-url]")];
Promise.all(viewers.map(mount)).then(() => { window.matsearchViewerReady = true; });
