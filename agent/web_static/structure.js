// The 3D view of one stored structure: WEAS (weas-widget's bundled widget.js, served from the installed package)
// driven through its anywidget entry point with a small in-page model instead of a Jupyter kernel.
import widget from "/web/vendor/weas/widget.js";

const el = document.getElementById("viewer");
const status = document.getElementById("viewer-status");
const sid = el.dataset.structureId;

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

async function main() {
  let response, data;
  try {
    response = await fetch(`/web/api/structure/${encodeURIComponent(sid)}`);
    data = await response.json();
  } catch (err) {
    status.textContent = `could not load the structure: ${err}`;
    status.className = "error";
    return;
  }
  if (!response.ok) {
    status.textContent = data.error || `could not load the structure (HTTP ${response.status})`;
    status.className = "error";
    return;
  }
  const model = makeModel({
    ...DEFAULTS,
    atoms: data.atoms,
    boundary: boundaryFor(1),
    viewerStyle: { width: "100%", height: "100%" },
  });
  try {
    await widget.render({ model, el });
  } catch (err) {
    status.textContent = `the 3D viewer failed: ${err}`;
    status.className = "error";
    return;
  }
  document.getElementById("repeat").addEventListener("change", (ev) => {
    model.update("boundary", boundaryFor(Number(ev.target.value)));
  });
  document.getElementById("style").addEventListener("change", (ev) => {
    model.update("modelStyle", Number(ev.target.value));
  });
  status.textContent = `${data.atoms.symbols.length} atoms drawn`;
  window.matsearchViewerReady = true;
}

main();
